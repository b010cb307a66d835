"""Fixtures shared by every test package.

`sim` is a real simulated BingoCloud (HTTP on 127.0.0.1, demo scenario, fresh state per
test); `cloud_client` is the production client pointed at it.
"""

from __future__ import annotations

import shutil
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bingobackup.cli.prefect_server import ServerInfo
from bingobackup.cloud.client import BingoCloudClient

if TYPE_CHECKING:
    from bingobackup.sim.server import RunningSimulator

from support.flow import Registered, local_dedup_pool, register_cloud_and_pool
from support.testkeys import ACCESS_KEY, SECRET_KEY

__all__ = ["ACCESS_KEY", "SECRET_KEY"]


_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture
def tmp_path(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """pytest's tmp_path, emptied as soon as its test has passed.

    Many tests start a simulated cloud with ~200 MiB of disk images; pytest would keep every
    test's directory until the session ends (about 20 GiB), enough to fill a CI machine's disk.
    A failed test keeps its directory for inspection.
    """
    yield tmp_path
    reports = request.node.stash.get(_REPORTS, {})
    if all(reports.get(phase) is not None and reports[phase].passed for phase in ("setup", "call")):
        shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[RunningSimulator]:
    from bingobackup.sim.server import start_simulator

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


@pytest.fixture
def small_packs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dedup packs of one chunk: the pool writes a blob per chunk as the disk is read, as a
    large disk's 16 MiB packs do, so faults meet the channels mid-disk in a small test."""
    from bingobackup.pools import packs

    monkeypatch.setattr(packs, "PACK_TARGET_BYTES", 1)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerInfo]:
    """One local Prefect server for the whole session, started the way the CLI starts it."""
    from prefect.settings import PREFECT_LOGGING_TO_API_ENABLED, temporary_settings

    from bingobackup.cli import prefect_server as manager

    patch = pytest.MonkeyPatch()
    patch.setenv("BINGOBACKUP_HOME", str(tmp_path_factory.mktemp("bingobackup-home")))
    patch.delenv("PREFECT_API_URL", raising=False)
    info = manager.ensure_server()
    patch.setenv("PREFECT_API_URL", info.url)
    try:
        # Run logs stay local: shipping them would outlive the server at the end of the session.
        with temporary_settings(
            updates={**manager.client_settings(info), PREFECT_LOGGING_TO_API_ENABLED: False}
        ):
            yield info
    finally:
        patch.delenv("PREFECT_API_URL", raising=False)
        manager.stop_server()
        patch.undo()


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """A real S3 HTTP server (moto) on 127.0.0.1 for the session; its endpoint URL.
    Tests create their own uniquely named buckets in it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        assert server._server is not None
        yield f"http://127.0.0.1:{server._server.server_port}"
    finally:
        server.stop()


@pytest.fixture
def registered(
    prefect_server: ServerInfo, sim: RunningSimulator, cloud_client: BingoCloudClient, tmp_path: Path
) -> Registered:
    pool_dir = tmp_path / "pool"
    return register_cloud_and_pool(sim, cloud_client, pool_dir, local_dedup_pool(pool_dir))
