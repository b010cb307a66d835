"""The backup's steps as Prefect tasks: thin wrappers around engine calls.

snapshot → read disk chunks → dedup → write to pool → register backup set. The three disk
tasks of one disk run at the same time and hand chunks to each other through the bounded
queues of one `DiskPipeline` (passed by reference): bytes never travel as task results.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from bingobackup.backup.job import BackupJob, VmOutcome, prepare_backup_job, snapshot_disks
from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.models import Snapshot
from bingobackup.mover.backup import DiskBackupResult
from bingobackup.mover.stages import DiskPipeline
from bingobackup.pools.stream import keep_catalog_copy
from bingobackup.resources.discovery import ResolvedVm
from bingobackup.resources.pools import pool_catalog_root
from bingobackup.resources.users import resolve_user
from bingobackup.specs.job import BackupJobSpec
from bingobackup.storage.errors import PoolError
from catalog import BackupSetRecord, CatalogWriter, DiskBackupRecord, JobRunRecord, RunError, VmBackupRecord
from catalog.lifecycle import remove_uncommitted_sets
from catalog.set_copy import set_copy_bytes
from tasks.blocks import PrefectRegistryStore, take_handed_snapshot


@task(name="resolve content", cache_policy=NONE)
def prepare_backup(spec: BackupJobSpec, user_name: str | None) -> BackupJob:
    # Resolving only reads: one round trip, or none when the command that started this run
    # has just read the registry for its checks.
    store = take_handed_snapshot() or PrefectRegistryStore().snapshot()
    job = prepare_backup_job(store, resolve_user(store, user_name), spec)
    # A killed run's disks may be in the pool without its set in the catalog; like its
    # snapshots, they go now (one run of a job at a time), reported with the leftovers.
    writer = CatalogWriter(*pool_catalog_root(job.pool_registration))
    removed = remove_uncommitted_sets(job.pool, writer, spec.name)
    job.leftovers_removed += [f"uncommitted backup set {set_id}" for set_id in removed]
    return job


@task(name="snapshot", task_run_name="snapshot {vm.name}", cache_policy=NONE)
def snapshot(
    job: BackupJob, vm: ResolvedVm, client: BingoCloudClient, taken: dict[str, Snapshot]
) -> list[str]:
    snapshot_disks(client, job, vm, taken)
    return [s.snapshot_id for s in taken.values()]


@task(name="read disk chunks", task_run_name="read {pipeline.label}", cache_policy=NONE)
def read_disk_chunks(pipeline: DiskPipeline) -> int:
    return pipeline.read()


@task(name="dedup", task_run_name="dedup {pipeline.label}", cache_policy=NONE)
def dedup(pipeline: DiskPipeline) -> int:
    return pipeline.dedup()


@task(name="write to pool", task_run_name="write {pipeline.label} to the pool", cache_policy=NONE)
def write_to_pool(pipeline: DiskPipeline) -> DiskBackupResult:
    return pipeline.write()


def _vm_record(job: BackupJob, outcome: VmOutcome) -> VmBackupRecord:
    return VmBackupRecord.from_instance(
        job.set_id,
        outcome.vm.instance,
        status=outcome.status,
        error=outcome.error,
        started_at=outcome.started_at,
        finished_at=outcome.finished_at,
        bytes_read=outcome.total("bytes_read"),
        bytes_sent=outcome.total("bytes_sent"),
        bytes_stored=outcome.total("bytes_stored"),
    )


def _disk_records(job: BackupJob, outcome: VmOutcome) -> list[DiskBackupRecord]:
    return [
        DiskBackupRecord(
            set_id=job.set_id,
            vm_id=outcome.vm.instance_id,
            volume_id=d.disk.volume_id,
            name=d.disk.name,
            size_bytes=d.disk.size_bytes,
            is_root=d.disk.system,
            device_name=d.disk.device,
            storage_id=d.disk.storage_id,
            format=d.disk.format or "raw",
            serial=d.disk.volume_id,
            snapshot_id=d.snapshot_id,
            bytes_read=d.result.bytes_read,
            bytes_sent=d.result.bytes_sent,
            bytes_stored=d.result.bytes_stored,
        )
        for d in outcome.disks
        if d.result is not None
    ]


def _run_errors(outcomes: list[VmOutcome]) -> tuple[RunError, ...]:
    """Every failed attempt (so the report shows retries), then every skipped VM's reason."""
    errors = []
    for o in outcomes:
        history = o.history or []
        failures = [a for a in history if a.status == "failed"]
        if not history and o.status == "failed":
            errors.append(RunError(target=o.vm.instance_id, message=o.error))
        for a in failures:
            errors.append(RunError(target=o.vm.instance_id, message=f"attempt {a.attempt}: {a.error}"))
        if o.status == "skipped":
            errors.append(RunError(target=o.vm.instance_id, message=f"skipped: {o.error}"))
    return tuple(errors)


@task(name="register backup set", cache_policy=NONE)
def register_backup_set(job: BackupJob, outcomes: list[VmOutcome], run_id: str, attempts: int) -> str:
    """Record the set (its committed VMs) and the run in the pool's catalog; returns the status.

    Runs only after every disk's chunks are durable (each disk writer committed), so a
    reader never sees a set whose chunks are missing.
    """
    ok = [o for o in outcomes if o.status == "ok"]
    failed = [o for o in outcomes if o.status == "failed"]
    skipped = [o for o in outcomes if o.status == "skipped"]
    # A run whose every VM was skipped by its conditions backed up nothing, but did not fail.
    status = ("partial" if ok else "failed") if failed else ("ok" if ok else "skipped")
    finished = datetime.now(UTC)
    totals = {c: sum(o.total(c) for o in outcomes) for c in ("bytes_read", "bytes_sent", "bytes_stored")}
    # An object pool's catalog is in its bucket, reached with the pool's own endpoint and keys.
    writer = CatalogWriter(*pool_catalog_root(job.pool_registration))
    if ok:
        _write_set(job, writer, outcomes, ok, status, run_id, finished, totals)
    writer.write_job_run(
        JobRunRecord(
            run_id=run_id,
            job_name=job.spec.name,
            kind="backup",
            flow_run_id=run_id,
            pool=job.pool_registration.name,
            cloud=job.cloud.name,
            set_id=job.set_id if ok else "",
            status={"ok": "completed"}.get(status, status),
            started_at=job.started_at,
            ended_at=finished,
            attempts=attempts,
            vms_ok=len(ok),
            vms_failed=len(failed),
            vms_skipped=len(skipped),
            errors=_run_errors(outcomes),
            **totals,
        )
    )
    return status


def _write_set(
    job: BackupJob,
    writer: CatalogWriter,
    outcomes: list[VmOutcome],
    ok: list[VmOutcome],
    status: str,
    run_id: str,
    finished: datetime,
    totals: dict[str, int],
) -> None:
    """Commit the set's row, its VMs' and committed disks' rows and manifests, then keep a copy
    on the media for pools that hold one."""
    vms, disks = [_vm_record(job, o) for o in outcomes], [r for o in ok for r in _disk_records(job, o)]
    committed = writer.write_backup_set(
        BackupSetRecord(
            set_id=job.set_id,
            job_name=job.spec.name,
            pool=job.pool_registration.name,
            cloud=job.cloud.name,
            started_at=job.started_at,
            finished_at=finished,
            status=status,
            run_id=run_id,
            backup_host=job.host.instance_id,
            format_version=job.pool.config.format_version,
            **totals,
        ),
        vms,
        disks,
        [d.result.manifest for o in ok for d in o.disks if d.result is not None],
    )
    # Tape and optical pools keep the set's rows on the media too: `pool scan` rebuilds
    # the catalog from them when the pool home is lost. The set is committed either way.
    try:
        keep_catalog_copy(job.pool, job.set_id, lambda: set_copy_bytes(committed, vms, disks))
    except PoolError as error:
        get_run_logger().warning("set %s has no catalog copy on the media: %s", job.set_id, error)
