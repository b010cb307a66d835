"""Simulators for the simulator's own tests, started with this package's keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.sim import ACCESS_KEY, SECRET_KEY

from bingobackup.sim.server import RunningSimulator, start_simulator


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[RunningSimulator]:
    running = start_simulator(
        tmp_path / "state", ACCESS_KEY, SECRET_KEY, scenario="demo", transition_delay=0.05
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[RunningSimulator]:
    running = start_simulator(
        tmp_path / "state", ACCESS_KEY, SECRET_KEY, scenario=None, transition_delay=0.05
    )
    try:
        yield running
    finally:
        running.stop()
