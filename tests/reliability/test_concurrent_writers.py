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

The suite runs 2 writers per pool and 2 rounds, both pools at once, with the deletion and
`gc` beside (no export: every command line costs a few seconds of CPU to start, and the
suite's budget is about a minute); BINGOBACKUP_RELIABILITY_LONG runs 4 writers per pool,
3 rounds, and the export too (`make reliability`).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.concurrency import ConcurrencyResult, Scenario, WritersRig, record_concurrency, run_scenarios
from support.crash_harness import SEED_ENV, Trial, long_campaign
from support.flow import POOL_PASSPHRASE, Registered
from support.s3 import MOTO_KEYS, new_bucket
from support.s3_faults import DROP, LOST_ANSWER, SLOW, FaultProxy

from bingobackup.cli.prefect_server import ServerInfo
from bingobackup.resources.pools import create_registered_pool
from bingobackup.resources.store import RegistryStore
from bingobackup.resources.users import LOCAL_ADMIN
from bingobackup.storage.s3config import S3Settings

FAULT_EVERY = 15  # every 15th request to the object pool meets a fault, in turn:
FAULTS = (503, 500, SLOW, DROP, LOST_ANSWER)
SLOW_SECONDS = 0.5


def object_pool_at(endpoint: str, moto: str, **s3: Any) -> Callable[[RegistryStore, str], str]:
    """Registers an encrypted object pool (dedup) in a new bucket of the session's moto
    server, reached through `endpoint` (the fault proxy), with `s3` settings besides."""

    def create(store: RegistryStore, suffix: str) -> str:
        settings = S3Settings(
            **s3,
            bucket=new_bucket(moto, prefix="conc"),
            prefix=f"pools/object-{suffix}",
            endpoint_url=endpoint,
            access_key_id=MOTO_KEYS["aws_access_key_id"],
            secret_access_key=MOTO_KEYS["aws_secret_access_key"],
        )
        name = f"object-{suffix}"
        create_registered_pool(
            store,
            LOCAL_ADMIN,
            name=name,
            kind="object",
            s3=settings,
            encrypted=True,
            passphrase=POOL_PASSPHRASE,
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

    name = object_pool_at(proxy.endpoint, moto_s3)(
        PrefectRegistryStore(), registered.cloud.removeprefix("sim-")
    )
    return dataclasses.replace(registered, pool=name, pool_dir=tmp_path / "no-local-pool")


def seed() -> int:
    return int(os.environ.get(SEED_ENV, "26"))


def test_writers_on_a_local_and_an_object_pool_beside_deletion_and_gc(
    registered: Registered,
    on_object_pool: Registered,
    proxy: FaultProxy,
    tmp_path: Path,
    prefect_server: ServerInfo,
) -> None:
    long = long_campaign()
    writers, rounds = (4, 3) if long else (2, 2)
    local = WritersRig(registered, tmp_path / "local", prefect_server.url, seed(), writers, "local-vm")
    remote = WritersRig(
        on_object_pool, tmp_path / "object", prefect_server.url, seed() + 1, writers, "object-vm"
    )
    beside = "export + delete/gc" if long else "delete/gc"
    scenarios = [
        Scenario(local, f"{writers} writers + {beside}, local pool", object_pool=False, export=long),
        Scenario(
            remote, f"{writers} writers + {beside}, object pool, S3 faults", object_pool=True, export=long
        ),
    ]
    if long:  # as an operator does: export-disk then knows the object pool by name
        assert remote.run(["pool", "list"])[0] == 0
    scenarios[1].result.faults_injected = proxy.injected  # counted as they are injected
    proxy.fault_every(FAULT_EVERY, *FAULTS)

    run_scenarios(scenarios, rounds)  # the last gc and the checks included

    assert [s.trial.problems for s in scenarios] == [[], []]
    assert all(s.trial.survived and not s.trial.data_lost for s in scenarios)
    assert set(proxy.injected) == set(FAULTS)  # the object pool met every kind of fault


def test_an_object_pool_outage_inside_the_reconnect_window_is_ridden_out_and_past_it_fails_clearly(
    registered: Registered, moto_s3: str, proxy: FaultProxy, tmp_path: Path, prefect_server: ServerInfo
) -> None:
    """Every upload to the pool fails (500) from the backup's start: cleared after a few
    failed tries, the backup completes and verifies. The long campaign also keeps it failing:
    the backup fails after the reconnect window (1 min) with one line naming the pool and
    what to do, and a rerun once the pool answers completes and verifies."""
    from tasks.blocks import PrefectRegistryStore

    # One try per request: the outage meets the backup's own reconnect (not botocore's retries).
    name = object_pool_at(proxy.endpoint, moto_s3, max_attempts=1)(
        PrefectRegistryStore(), "outage" + registered.cloud[-8:]
    )
    on_pool = dataclasses.replace(registered, pool=name, pool_dir=tmp_path / "no-local-pool")
    rig = WritersRig(on_pool, tmp_path, prefect_server.url, seed(), 1, "outage-vm", {"reconnect_minutes": 1})
    (vm,) = rig.vms
    trial = Trial("backup through an outage inside the reconnect window, object pool", "uploads fail (500)")
    result = ConcurrencyResult(writers=1, faults_injected={"outage": 1})
    started = time.monotonic()
    before = rig.catalog_sets()
    proxy.fail_uploads(500)
    backup = threading.Thread(target=lambda: trial.problems.extend(_failed(rig, rig.backup_args(vm))))
    backup.start()
    while proxy.failures < OUTAGE_FAILURES and backup.is_alive():
        time.sleep(0.05)  # the pace of looking at the proxy's count, not a wait for an event
    proxy.fail_uploads(None)
    backup.join()
    result.seconds_concurrent = time.monotonic() - started
    assert proxy.failures >= OUTAGE_FAILURES, "the backup ended before the outage met it"
    _checked(rig, trial, result, before)
    assert trial.problems == []

    if not long_campaign():
        return
    trial = Trial(
        "backup through an outage past the reconnect window, then a rerun, object pool", "uploads fail (500)"
    )
    result = ConcurrencyResult(writers=1, faults_injected={"outage": 1})
    rig.change_disks()
    before = rig.catalog_sets()
    proxy.fail_uploads(500)
    started = time.monotonic()
    code, output = rig.run(rig.backup_args(vm))
    result.seconds_concurrent = time.monotonic() - started
    proxy.fail_uploads(None)
    lines = [line for line in output.splitlines() if "reconnect time" in line]
    result.failure_line = lines[-1].strip() if lines else ""  # the command's own, after the run's log
    if (
        code == 0
        or not lines
        or name not in lines[-1]
        or "run the job again" not in lines[-1]
        or "Traceback" in output
    ):
        trial.problems.append(f"the backup past the window exited {code}: {output[-1500:]}")
    rig.free_job_slots()
    trial.problems += _failed(rig, rig.backup_args(vm))
    _checked(rig, trial, result, before)
    assert trial.problems == [], output


OUTAGE_FAILURES = 6  # failed uploads before the pool answers again: the backup's reconnect met them


def _failed(rig: WritersRig, args: list[str]) -> list[str]:
    code, output = rig.run(args)
    return [] if code == 0 else [f"{' '.join(args[:2])} exited {code}: {output[-1500:]}"]


def _checked(rig: WritersRig, trial: Trial, result: ConcurrencyResult, before: set[str]) -> None:
    """The backup committed one set, every set exports byte-for-byte, verify finds nothing."""
    if not trial.problems:
        rig.remember(len(rig.set_of) + 1, before)
        trial.problems += rig.check(set(s for s, _ in rig.expected))
    trial.data_lost = any("exports as" in problem for problem in trial.problems)
    trial.killed, trial.survived = True, not trial.problems
    result.sets = len(rig.expected)
    record_concurrency(trial, result)
