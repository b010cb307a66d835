"""Helpers shared by the resource tests (a uniquely named module: every conftest is `conftest`)."""

from __future__ import annotations

import socket
from typing import Any, NamedTuple

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.resources.models import CloudRegistration


class CloudKeys(NamedTuple):
    access_key: str
    secret_key: str


def instance_id_named(client: BingoCloudClient, name: str) -> str:
    ids = [i.instance_id for i in client.describe_instances() if i.name == name]
    assert len(ids) == 1, f"the demo scenario should have exactly one VM named {name!r}, found {ids}"
    return ids[0]


def assert_secret_hidden(error: BaseException, secret: str) -> None:
    for text in (str(error), repr(error), str(error.__cause__ or ""), str(error.__context__ or "")):
        assert secret not in text


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def changed(registration: CloudRegistration, **changes: Any) -> CloudRegistration:
    """A validated copy with `changes` (model_copy would not turn a str into a SecretStr)."""
    fields = {name: getattr(registration, name) for name in CloudRegistration.model_fields}
    return CloudRegistration.model_validate({**fields, **changes})
