"""Signature Version 2 (HmacSHA256) for BingoCloud's EC2-style Query API.

Shared by the client (to sign) and the simulator (to verify). Its correctness is pinned by
a test against botocore's independent SigV2 implementation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from urllib.parse import quote

API_VERSION = "2009-08-15"
SIGNATURE_METHOD = "HmacSHA256"
SIGNATURE_VERSION = "2"
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def mask_key(key: str) -> str:
    """A key as messages, tables and reprs show it: its first and last four characters, enough
    for an operator to tell two keys apart, too few to use one. Short keys show two; an absent
    key shows as nothing."""
    if not key:
        return ""
    if len(key) < 12:
        return f"{key[:2]}…"
    return f"{key[:4]}…{key[-4:]}"


def _encode(value: str) -> str:
    # RFC 3986: only unreserved characters stay literal; space becomes %20, never '+'.
    return quote(value.encode("utf-8"), safe="-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    """Every parameter but `Signature`, sorted by name, percent-encoded, joined with '&'."""
    return "&".join(f"{_encode(k)}={_encode(str(v))}" for k, v in sorted(params.items()) if k != "Signature")


def string_to_sign(method: str, host: str, path: str, params: Mapping[str, str]) -> str:
    return f"{method.upper()}\n{host.lower()}\n{path or '/'}\n{canonical_query(params)}"


def signature(secret_key: str, method: str, host: str, path: str, params: Mapping[str, str]) -> str:
    digest = hmac.new(
        secret_key.encode("utf-8"), string_to_sign(method, host, path, params).encode("utf-8"), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(secret_key: str, method: str, host: str, path: str, params: Mapping[str, str]) -> bool:
    expected = signature(secret_key, method, host, path, params)
    return hmac.compare_digest(expected, params.get("Signature", ""))


def cluster_timestamp(now: float | None = None) -> str:
    """BingoCloud expects the cluster's local time written with a trailing 'Z'."""
    return time.strftime(TIMESTAMP_FORMAT, time.localtime(time.time() if now is None else now))


def signed_params(
    action: str, params: Mapping[str, str], access_key: str, secret_key: str, host: str, path: str = "/"
) -> dict[str, str]:
    """The full parameter set of one request, `Signature` included."""
    full = {
        **{k: str(v) for k, v in params.items()},
        "Action": action,
        "Version": API_VERSION,
        "AWSAccessKeyId": access_key,
        "SignatureVersion": SIGNATURE_VERSION,
        "SignatureMethod": SIGNATURE_METHOD,
        "Timestamp": cluster_timestamp(),
    }
    full["Signature"] = signature(secret_key, "POST", host, path, full)
    return full
