"""A scripted stand-in server for the client's transport tests (see cloud_stub.py), and the
machine's time zone switched for the timestamp tests."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from support.cloud_stub import ACCESS_KEY, SECRET_KEY, StubCloud

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


@pytest.fixture(params=["UTC", "America/New_York"])
def machine_tz(request: pytest.FixtureRequest) -> Iterator[str]:
    """The process runs in this zone (TZ + tzset) for the test, as a backup host or a machine
    running the simulator might; the previous zone is restored after."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    try:
        yield request.param
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()
