"""`ClientToken` on create calls, as EC2 does it (RunInstances, CreateVolume, CreateSnapshot).

A client that loses the reply to a create call cannot know whether the cloud made the
resource; it retries with the same token. The first request with a token creates the
resource and remembers (action, token) → (parameters, resource id); a repeat with the same
parameters answers with that resource as it is now and creates nothing, a repeat with other
parameters is refused with `IdempotentParameterMismatch`. Tokens are kept in the persisted
state, so they survive a restart of the simulator, for TOKEN_TTL_SECONDS.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from bingobackup.sim.cloud import SimCloud
from bingobackup.sim.errors import SimApiError, invalid
from bingobackup.sim.query import Params
from bingobackup.sim.state import ClientTokenRec
from bingobackup.sim.types import Handler

TOKEN_PARAM = "ClientToken"
MAX_TOKEN_LENGTH = 64
# EC2 keeps a token valid at least 24 hours after the resource is gone.
TOKEN_TTL_SECONDS = 24 * 3600.0
# Transport and signing parameters differ between retries of one logical request (a new
# Timestamp, so a new Signature); AvailabilityZone is exempt in EC2 too.
_NOT_COMPARED = frozenset(
    {
        "Action",
        "AWSAccessKeyId",
        "Signature",
        "SignatureMethod",
        "SignatureVersion",
        "Timestamp",
        "Version",
        "AvailabilityZone",
        TOKEN_PARAM,
    }
)

ResourceIdOf = Callable[[dict[str, Any]], str]
Replay = Callable[[SimCloud, str], dict[str, Any] | None]


def _check_token(token: str) -> None:
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii() or not token.isprintable():
        raise invalid(
            TOKEN_PARAM,
            token[:MAX_TOKEN_LENGTH],
            f"use at most {MAX_TOKEN_LENGTH} printable ASCII characters",
        )


def fingerprint(params: Params) -> str:
    """A digest of the parameters that define the request (order-independent)."""
    digest = hashlib.sha256()
    for name in sorted(params.values):
        if name not in _NOT_COMPARED:
            digest.update(f"{name}\0{params.values[name]}\0".encode())
    return digest.hexdigest()


def _forget_expired(cloud: SimCloud, now: float) -> None:
    tokens = cloud.state.client_tokens
    for key in [k for k, rec in tokens.items() if now - rec.created > TOKEN_TTL_SECONDS]:
        del tokens[key]


def idempotent(action: str, handler: Handler, resource_id_of: ResourceIdOf, replay: Replay) -> Handler:
    """`handler`, honouring `ClientToken`. `replay(cloud, resource_id)` renders the response
    for an existing resource, or None when it no longer exists."""

    def handle(cloud: SimCloud, params: Params) -> dict[str, Any]:
        token = params.get(TOKEN_PARAM)
        if token is None:
            return handler(cloud, params)
        _check_token(token)
        key = f"{action}/{token}"
        wanted = fingerprint(params)
        seen = cloud.state.client_tokens.get(key)
        if seen is not None:
            if seen.fingerprint != wanted:
                raise SimApiError(
                    "IdempotentParameterMismatch",
                    f"The client token '{token}' was already used for a {action} request with "
                    f"different parameters (it made {seen.resource_id}); use a new client token "
                    "for a new request.",
                )
            body = replay(cloud, seen.resource_id)
            if body is None:
                raise SimApiError(
                    "IdempotentParameterMismatch",
                    f"The client token '{token}' is associated with {seen.resource_id}, which is "
                    "already deleted; use a new client token.",
                )
            cloud.stats.token_replayed(action)
            return body
        body = handler(cloud, params)
        now = time.time()
        _forget_expired(cloud, now)
        cloud.state.client_tokens[key] = ClientTokenRec(
            action=action, fingerprint=wanted, resource_id=resource_id_of(body), created=now
        )
        return body

    return handle
