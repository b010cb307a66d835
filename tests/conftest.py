"""Fixtures shared by every test package.

`sim` is a real simulated BingoCloud (HTTP on 127.0.0.1, demo scenario, fresh state per
test); `cloud_client` is the production client pointed at it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.sim.server import RunningSimulator, start_simulator

ACCESS_KEY = "AKTEST0000000001"
SECRET_KEY = "sk-test-0123456789abcdef"  # tests assert this never leaks into messages


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[RunningSimulator]:
    running = start_simulator(
        state_dir=tmp_path / "sim-state",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        scenario="demo",
        port=0,
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def cloud_client(sim: RunningSimulator) -> BingoCloudClient:
    return BingoCloudClient(sim.endpoint, ACCESS_KEY, SECRET_KEY, retry_window_seconds=5.0)
