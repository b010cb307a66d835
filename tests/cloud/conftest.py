"""A scripted stand-in server for the client's transport tests (see cloud_stub.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cloud_stub import ACCESS_KEY, SECRET_KEY, StubCloud

from bingobackup.cloud import BingoCloudClient


@pytest.fixture
def stub() -> Iterator[StubCloud]:
    server = StubCloud(SECRET_KEY).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def stub_client(stub: StubCloud) -> BingoCloudClient:
    """A client of the stub that never retries, so every scripted reply is seen once."""
    return BingoCloudClient(stub.endpoint, ACCESS_KEY, SECRET_KEY, retry_window_seconds=0)
