"""Raw-HTTP helpers for the simulator tests (independent of the production client)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bingobackup.cloud import signing

ACCESS_KEY = "AKSIMTEST0000001"
SECRET_KEY = "sk-simtest-abcdef0123456789"
NS = "{http://ec2.amazonaws.com/doc/2009-08-15/}"


class Reply:
    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body
        self.root = ET.fromstring(body)
        for element in self.root.iter():
            element.tag = element.tag.replace(NS, "")

    def text(self, path: str) -> str:
        found = self.root.find(path)
        assert found is not None, f"no {path} in {self.body[:500]!r}"
        return (found.text or "").strip()

    @property
    def code(self) -> str:
        return self.text("Errors/Error/Code")

    @property
    def message(self) -> str:
        return self.text("Errors/Error/Message")

    def items(self, set_path: str) -> list[ET.Element]:
        found = self.root.find(set_path)
        return [] if found is None else found.findall("item")


def post(endpoint: str, params: dict[str, str]) -> Reply:
    """POST a form; returns the reply whatever its status."""
    parts = urllib.parse.urlsplit(endpoint)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(
            "POST",
            "/",
            body=urllib.parse.urlencode(params),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        response = connection.getresponse()
        return Reply(response.status, response.read())
    finally:
        connection.close()


def call(
    endpoint: str,
    action: str,
    params: dict[str, str] | None = None,
    *,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
) -> Reply:
    host = urllib.parse.urlsplit(endpoint).netloc
    return post(endpoint, signing.signed_params(action, params or {}, access_key, secret_key, host))


def ok(endpoint: str, action: str, params: dict[str, str] | None = None) -> Reply:
    reply = call(endpoint, action, params)
    assert reply.status == 200, f"{action} failed: {reply.body.decode()}"
    return reply


def admin(url: str, method: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_until(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.02)


def sparse_digest(path: Path) -> str:
    """sha256 over the size and the data extents: equal files give equal digests, fast on huge holes."""
    from bingobackup.sparse import data_extents

    digest = hashlib.sha256(str(Path(path).stat().st_size).encode())
    with Path(path).open("rb") as f:
        for offset, length in data_extents(f.fileno()):
            digest.update(f"{offset}:{length}".encode())
            digest.update(os.pread(f.fileno(), length, offset))
    return digest.hexdigest()


def volume_status(endpoint: str, volume_id: str) -> str:
    return (
        ok(endpoint, "DescribeVolumes", {"VolumeId.1": volume_id}).items("volumeSet")[0].findtext("status")
        or ""
    )


def snapshot_status(endpoint: str, snapshot_id: str) -> str:
    reply = ok(endpoint, "DescribeSnapshots", {"SnapshotId.1": snapshot_id})
    return reply.items("snapshotSet")[0].findtext("status") or ""


def instance_ids_by_name(endpoint: str) -> dict[str, str]:
    reply = ok(endpoint, "DescribeInstances")
    return {
        (i.findtext("instanceName") or ""): (i.findtext("instanceId") or "")
        for r in reply.items("reservationSet")
        for i in r.find("instancesSet").findall("item")  # type: ignore[union-attr]
    }


def write_sparse_image(path: Path, size: int, pieces: dict[int, bytes]) -> Path:
    with path.open("wb") as f:
        f.truncate(size)
        for offset, data in pieces.items():
            f.seek(offset)
            f.write(data)
    return path
