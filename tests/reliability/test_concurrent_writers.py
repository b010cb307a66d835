"""Concurrency (issue 26): several `bingobackup backup run` processes write one encrypted dedup
pool at once, local and object, while an `export-disk` reads an earlier set and a
`sets delete` + `gc` removes another; see tests/support/concurrency.py.

Afterwards every set still listed exports byte-for-byte, `verify` finds nothing, the cloud
holds no snapshot or temporary volume, and the pool's stored bytes are a serial run's: on a
local pool exactly, after `gc` (which keeps one copy of a chunk two writers stored at once);
on an object pool, whose manifests cannot be rewritten, the chunk ids stored (each counted
once) are the serial run's and the extra copies a race left are counted, not collected.

The suite runs 2 writers and 2 rounds on each pool; BINGOBACKUP_RELIABILITY_LONG runs 4
writers and 3 rounds (`make reliability`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.concurrency import (
    ConcurrencyResult,
    WritersRig,
    record_concurrency,
    serial_figures,
    stored_figures,
)
from support.crash_harness import SEED_ENV, Trial, file_sha256, long_campaign
from support.flow import POOL_PASSPHRASE, Registered, register_cloud_and_pool
from support.s3 import MOTO_KEYS, new_bucket

from bingobackup.cli.prefect_server import ServerInfo
from bingobackup.cloud.client import BingoCloudClient
from bingobackup.resources.pools import create_registered_pool
from bingobackup.resources.store import RegistryStore
from bingobackup.resources.users import LOCAL_ADMIN
from bingobackup.sim.server import RunningSimulator
from bingobackup.storage.s3config import S3Settings


def object_pool_at(endpoint: str, bucket_endpoint: str | None = None) -> Callable[[RegistryStore, str], str]:
    """For `register_cloud_and_pool`: an encrypted object pool (dedup) in a new bucket of the
    session's moto server, reached through `endpoint` (the moto server, or a fault proxy)."""

    def create(store: RegistryStore, suffix: str) -> str:
        settings = S3Settings(
            bucket=new_bucket(bucket_endpoint or endpoint, prefix="conc"),
            prefix=f"pools/object-{suffix}",
            endpoint_url=endpoint,
            access_key_id=MOTO_KEYS["aws_access_key_id"],
            secret_access_key=MOTO_KEYS["aws_secret_access_key"],
        )
        create_registered_pool(
            store, LOCAL_ADMIN, name=f"object-{suffix}", kind="object", s3=settings, encrypted=True,
            passphrase=POOL_PASSPHRASE,
        )
        return f"object-{suffix}"

    return create


@pytest.fixture
def on_object_pool(
    prefect_server: ServerInfo, sim: RunningSimulator, cloud_client: BingoCloudClient, moto_s3: str, tmp_path: Path
) -> Registered:
    return register_cloud_and_pool(sim, cloud_client, tmp_path / "no-local-pool", object_pool_at(moto_s3))


def writers_and_rounds() -> tuple[int, int]:
    return (4, 3) if long_campaign() else (2, 2)


def run_scenario(rig: WritersRig, *, writers: int, rounds: int, object_pool: bool) -> tuple[Trial, ConcurrencyResult]:
    pool_name = rig.registered.pool
    kind = "object pool" if object_pool else "local pool"
    trial = Trial(f"{writers} writers + export + delete/gc, {kind}", f"{rounds} rounds")
    result = ConcurrencyResult(writers=writers, rounds=rounds)
    deleted: set[str] = set()
    export = rig.work / "export" / "disk.raw"
    export.parent.mkdir()
    for round_number in range(1, rounds + 1):
        if round_number > 1:
            rig.change_disks()
        before = rig.catalog_sets()
        actors = {vm: [rig.backup_args(vm)] for vm in rig.vms}
        exported = None
        if round_number > 1:
            # Beside the backups: the last VM's previous set is exported, the first VM's deleted
            # and the pool collected (the chunks it shares with every later set stay).
            exported = (rig.set_of[(round_number - 1, rig.vms[-1])], rig.volume[rig.vms[-1]])
            victim = rig.set_of[(round_number - 1, rig.vms[0])]
            actors["export"] = [rig.export_args(*exported, export)]
            actors["delete+gc"] = [
                ["sets", "delete", victim, "--pool", pool_name, "--yes"],
                ["gc", "--pool", pool_name, "--repack-threshold", "90"],
            ]
            deleted.add(victim)
        started = time.monotonic()
        finished = rig.run_together(actors)
        result.seconds_concurrent += time.monotonic() - started
        for name, done in finished.items():
            if not done.ok:
                trial.problems.append(f"round {round_number}: {name} failed: {done.outputs[-1][-1500:]}")
        if trial.problems:
            return trial, result
        if exported and file_sha256(export) != rig.expected[exported]:
            trial.data_lost = True
            trial.problems.append(f"round {round_number}: export-disk of {exported[0]} wrote other bytes")
        rig.remember(round_number, before)

    result.before_gc = stored_figures(rig.pool())
    # Nothing runs now: every condemned list is carried out; every pack with a dead byte is
    # repacked where the storage allows (a local pool), which also drops duplicate copies.
    code, output = rig.run(["gc", "--pool", pool_name, "--repack-threshold", "100"])
    if code != 0:
        trial.problems.append(f"the final gc failed: {output[-1500:]}")
    result.after_gc = stored_figures(rig.pool())
    kept = {set_id for set_id, _ in rig.expected} - deleted
    trial.problems += rig.check(kept)
    trial.data_lost |= any("exports as" in problem for problem in trial.problems)
    result.sets = len(kept)
    remaining = sorted((s, v, path) for (s, v), path in rig.kept_images.items() if s in kept)
    result.serial = serial_figures(rig.work, remaining)
    after, serial = result.after_gc, result.serial
    if object_pool:  # write-once manifests: the race's extra copies stay while their sets live
        if after.unique_live_bytes != serial.stored_chunk_bytes:
            trial.problems.append(
                f"chunk ids stored hold {after.unique_live_bytes} bytes, a serial run's {serial.stored_chunk_bytes}"
            )
        if after.dead_packs:
            trial.problems.append(f"{after.dead_packs} packs no set uses are left after gc")
    elif (after.stored_chunk_bytes, after.duplicate_copies) != (serial.stored_chunk_bytes, 0):
        trial.problems.append(
            f"stored {after.stored_chunk_bytes} chunk bytes ({after.duplicate_copies} duplicate copies) "
            f"after gc, a serial run {serial.stored_chunk_bytes}"
        )
    trial.killed = True  # here: the scenario ran to its end
    trial.survived = not trial.problems
    return trial, result


def check_and_record(trial: Trial, result: ConcurrencyResult) -> None:
    record_concurrency(trial, result)
    assert trial.problems == [], trial.problems
    assert not trial.data_lost


def test_writers_on_a_local_pool_beside_export_delete_and_gc(
    registered: Registered, tmp_path: Path, prefect_server: ServerInfo
) -> None:
    writers, rounds = writers_and_rounds()
    rig = WritersRig(registered, tmp_path, prefect_server.url, int(os.environ.get(SEED_ENV, "26")), writers)
    check_and_record(*run_scenario(rig, writers=writers, rounds=rounds, object_pool=False))


def test_writers_on_an_object_pool_beside_export_delete_and_gc(
    on_object_pool: Registered, tmp_path: Path, prefect_server: ServerInfo
) -> None:
    writers, rounds = writers_and_rounds()
    rig = WritersRig(on_object_pool, tmp_path, prefect_server.url, int(os.environ.get(SEED_ENV, "26")), writers)
    assert rig.run(["pool", "list"])[0] == 0  # as an operator does: export-disk then knows the pool by name
    check_and_record(*run_scenario(rig, writers=writers, rounds=rounds, object_pool=True))
