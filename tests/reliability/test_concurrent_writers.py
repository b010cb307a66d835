"""Concurrency (issue 26): several `bingobackup backup run` processes write one encrypted dedup
pool at once, a local pool and an object pool (moto's S3 server behind the fault proxy:
throttling, 500s, slow answers, dropped links and lost answers all through the run), while
on each an `export-disk` reads an earlier set and a `sets delete` + `gc` removes another;
see tests/support/concurrency.py.

Afterwards every set still listed exports byte-for-byte, `verify` finds nothing, the cloud
holds no snapshot or temporary volume, and the pool's stored bytes are a serial run's: on the
local pool exactly, after `gc` (which keeps one copy of a chunk two writers stored at once);
on the object pool, whose manifests cannot be rewritten, the chunk ids stored (each counted
once) are the serial run's, and the extra copies a race left are counted, not collected.

The suite runs 2 writers per pool and 2 rounds (both pools at once); BINGOBACKUP_RELIABILITY_LONG
runs 4 writers per pool and 3 rounds (`make reliability`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.concurrency import Scenario, WritersRig, run_scenarios
from support.crash_harness import SEED_ENV, long_campaign
from support.flow import POOL_PASSPHRASE, Registered
from support.s3 import MOTO_KEYS, new_bucket
from support.s3_faults import DROP, LOST_ANSWER, SLOW, FaultProxy

from bingobackup.cli.prefect_server import ServerInfo
from bingobackup.resources.pools import create_registered_pool
from bingobackup.resources.store import RegistryStore
from bingobackup.resources.users import LOCAL_ADMIN
from bingobackup.storage.s3config import S3Settings

FAULT_EVERY = 7  # every 7th request to the object pool meets a fault, in turn:
FAULTS = (503, 500, SLOW, DROP, LOST_ANSWER)
SLOW_SECONDS = 1.0


def object_pool_at(endpoint: str, moto: str) -> Callable[[RegistryStore, str], str]:
    """For `register_cloud_and_pool`: an encrypted object pool (dedup) in a new bucket of
    the session's moto server, reached through `endpoint` (the fault proxy)."""

    def create(store: RegistryStore, suffix: str) -> str:
        settings = S3Settings(
            bucket=new_bucket(moto, prefix="conc"),
            prefix=f"pools/object-{suffix}",
            endpoint_url=endpoint,
            access_key_id=MOTO_KEYS["aws_access_key_id"],
            secret_access_key=MOTO_KEYS["aws_secret_access_key"],
        )
        name = f"object-{suffix}"
        create_registered_pool(
            store, LOCAL_ADMIN, name=name, kind="object", s3=settings, encrypted=True, passphrase=POOL_PASSPHRASE
        )
        return name

    return create


@pytest.fixture
def proxy(moto_s3: str) -> Iterator[FaultProxy]:
    running = FaultProxy(moto_s3)
    running.slow_seconds = SLOW_SECONDS
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def on_object_pool(registered: Registered, moto_s3: str, proxy: FaultProxy, tmp_path: Path) -> Registered:
    """The same registered cloud with an object pool besides (reached through the proxy)."""
    from tasks.blocks import PrefectRegistryStore

    name = object_pool_at(proxy.endpoint, moto_s3)(PrefectRegistryStore(), registered.cloud.removeprefix("sim-"))
    return dataclasses.replace(registered, pool=name, pool_dir=tmp_path / "no-local-pool")


def seed() -> int:
    return int(os.environ.get(SEED_ENV, "26"))


def test_writers_on_a_local_and_an_object_pool_beside_export_delete_and_gc(
    registered: Registered,
    on_object_pool: Registered,
    proxy: FaultProxy,
    tmp_path: Path,
    prefect_server: ServerInfo,
) -> None:
    writers, rounds = (4, 3) if long_campaign() else (2, 2)
    local = WritersRig(registered, tmp_path / "local", prefect_server.url, seed(), writers, "local-vm")
    remote = WritersRig(on_object_pool, tmp_path / "object", prefect_server.url, seed() + 1, writers, "object-vm")
    assert remote.run(["pool", "list"])[0] == 0  # as an operator does: export-disk then knows it by name
    scenarios = [
        Scenario(local, f"{writers} writers + export + delete/gc, local pool", object_pool=False),
        Scenario(remote, f"{writers} writers + export + delete/gc, object pool, S3 faults", object_pool=True),
    ]
    scenarios[1].result.faults_injected = proxy.injected  # counted as they are injected
    proxy.fault_every(FAULT_EVERY, *FAULTS)

    run_scenarios(scenarios, rounds)  # the last gc and the checks included

    assert [s.trial.problems for s in scenarios] == [[], []]
    assert all(s.trial.survived and not s.trial.data_lost for s in scenarios)
    assert set(proxy.injected) == set(FAULTS)  # the object pool met every kind of fault
