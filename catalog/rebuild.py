"""`bingobackup catalog rebuild`: a pool's catalog rebuilt from what the pool itself holds.

Damaged files (`catalog.health`) are moved aside to `<pool>/catalog/damaged/<table>/`, never
deleted. Then every set with a damaged or missing file gets that file written again, under
the commit id its surviving files carry (so they stay visible), the commit record last:

- `chunks` from the pool's per-disk manifests (what export and restore read): exact;
- `disk_backups` from the manifests, with the VM of a one-VM set; names and devices are lost;
- `vm_backups` as one row per VM id the disks name, status `unknown` (REBUILT_VM_STATUS):
  the VM's configuration is lost, its disks export;
- `backup_sets` from the surviving rows and the job run that committed the set.

A damaged `job_runs` file of a run that made a committed set is written again from that set.
Only the pool's public manifest API is used (`list_manifests`, `load_manifest`).
"""

from __future__ import annotations

import os
import posixpath
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import pyarrow as pa

from bingobackup.errors import BingoBackupError
from bingobackup.files import fsync_path
from bingobackup.format.manifest import DiskManifest
from catalog.health import (
    FINAL_WITH_SET,
    SET_TABLES,
    CatalogCheck,
    DamagedFile,
    DamagedFileError,
    check_catalog,
    read_file,
    split_name,
)
from catalog.location import CatalogError, CatalogLocation
from catalog.schema import (
    BACKUP_SETS,
    DISK_BACKUPS,
    JOB_RUNS,
    REBUILT_VM_STATUS,
    VM_BACKUPS,
    BackupSetRecord,
    DiskBackupRecord,
    JobRunRecord,
    R,
    VmBackupRecord,
    records_to_table,
    row_to_record,
)
from catalog.writer import CatalogWriter, manifest_table

DAMAGED_DIR = "damaged"
_LOST_VM = (
    "rebuilt by `bingobackup catalog rebuild`: the VM's configuration was lost with a damaged "
    "catalog file; its disks can be written with `bingobackup export-disk`"
)


class PoolManifests(Protocol):
    """What rebuild reads from the pool: its per-disk manifests (`bingobackup.pools.Pool`)."""

    def list_manifests(self) -> Iterator[tuple[str, str]]: ...

    def load_manifest(self, set_id: str, volume_id: str) -> DiskManifest: ...


@dataclass
class Rebuilt:
    """What `rebuild_catalog` did."""

    moved: list[tuple[str, str]] = field(default_factory=list)  # (damaged file, where it is now)
    written: list[str] = field(default_factory=list)  # catalog files written
    not_rebuilt: list[str] = field(default_factory=list)  # "what: why", nothing of it written


def rebuild_catalog(writer: CatalogWriter, pool: PoolManifests, *, format_version: int) -> Rebuilt:
    """Moves damaged catalog files aside and writes again every file the pool's sets need."""
    location = writer.location
    found = check_catalog(location)
    done = Rebuilt()
    for damaged in found.damaged:
        try:
            done.moved.append((damaged.path, move_aside(location, damaged)))
        except (OSError, CatalogError) as error:
            done.not_rebuilt.append(f"{damaged.path}: could not move it aside ({error}); it stays skipped")
    moved = [d for d in found.damaged if d.path in {path for path, _ in done.moved}]
    set_ids = {d.key for d in moved if d.table != "job_runs"} | {m.set_id for m in found.missing}
    volumes: dict[str, list[str]] = {}
    for set_id, volume_id in pool.list_manifests():
        volumes.setdefault(set_id, []).append(volume_id)
    for set_id in sorted(set_ids):
        try:
            _rebuild_set(writer, pool, found, set_id, sorted(volumes.get(set_id, [])), format_version, done)
        except (BingoBackupError, DamagedFileError, OSError) as error:
            done.not_rebuilt.append(f"set {set_id}: {error}")
    runs = dict(split_name(d.path) for d in moved if d.table == "job_runs")
    runs.update({run_id: uuid.uuid4().hex for run_id in found.unrecorded_runs})
    for run_id, commit_id in sorted(runs.items()):
        _rebuild_run(writer, found, run_id, commit_id, done)
    return done


def move_aside(location: CatalogLocation, damaged: DamagedFile) -> str:
    """Moves a damaged file to `<catalog>/damaged/<table>/`, where no reader looks; returns where."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    directory = posixpath.join(location.path, DAMAGED_DIR, damaged.table)
    target = posixpath.join(directory, f"{posixpath.basename(damaged.path)}.{stamp}")
    filesystem = location.filesystem
    if location.is_local:
        os.makedirs(directory, exist_ok=True)
        os.rename(damaged.path, target)
        for changed in (
            directory,
            posixpath.dirname(directory),
            location.path,
            posixpath.dirname(damaged.path),
        ):
            fsync_path(changed)
    else:  # object stores rename by copy and delete
        filesystem.copy_file(damaged.path, target)
        filesystem.delete_file(damaged.path)
    return target


def _rebuild_set(
    writer: CatalogWriter,
    pool: PoolManifests,
    found: CatalogCheck,
    set_id: str,
    volumes: list[str],
    format_version: int,
    done: Rebuilt,
) -> None:
    location = writer.location
    commit_id, set_record = found.committed.get(set_id, ("", None))
    run = None
    if set_record is None:
        run = _committing_run(found.runs, set_id)
        if run is None:
            raise CatalogError(
                "its commit record is damaged and no job run records that it completed, so it may be an "
                "interrupted backup; its disks can still be written with `bingobackup export-disk`"
            )
        commit_id = _surviving_commit(location, set_id) or uuid.uuid4().hex
    name = f"{set_id}.{commit_id}"
    vms = _records(location, "vm_backups", name, VmBackupRecord)
    disks = _records(location, "disk_backups", name, DiskBackupRecord)
    if disks is not None:
        volumes = sorted(d.volume_id for d in disks)
    if not volumes:
        raise CatalogError("the pool holds no manifest of it, so its disks cannot be rebuilt")
    manifests: dict[str, DiskManifest] = {}

    def manifest(volume_id: str) -> DiskManifest:
        if volume_id not in manifests:
            manifests[volume_id] = pool.load_manifest(set_id, volume_id)
        return manifests[volume_id]

    tables: list[tuple[str, pa.Table]] = []
    if not location.exists(location.file_path("chunks", name)):
        chunk_tables = [manifest_table(manifest(v), commit_id) for v in volumes]
        tables.append(("chunks", pa.concat_tables(chunk_tables)))
    if disks is None:
        vm_ids = {vm.vm_id for vm in vms or []}
        owner = vm_ids.pop() if len(vm_ids) == 1 else ""  # only a one-VM set says whose disks they are
        disks = [_disk_record(manifest(v), owner) for v in volumes]
        tables.append(("disk_backups", records_to_table(list(disks), DISK_BACKUPS, commit_id)))
    if vms is None:
        vms = [
            VmBackupRecord(set_id=set_id, vm_id=v, vm_name=v, status=REBUILT_VM_STATUS, error=_LOST_VM)
            for v in sorted({d.vm_id for d in disks if d.vm_id})
        ]
        tables.append(("vm_backups", records_to_table(list(vms), VM_BACKUPS, commit_id)))
    if set_record is None and run is not None:
        record = _set_record(run, vms, disks, format_version)
        tables.append(("backup_sets", records_to_table([record], BACKUP_SETS, commit_id)))
    for table, data in tables:  # in commit order: the commit record last
        writer._write_new(table, name, data)
        done.written.append(location.file_path(table, name))


def _records(location: CatalogLocation, table: str, name: str, model: type[R]) -> list[R] | None:
    """The rows of `<table>/<name>.parquet` (read verified), or None when there is no such file."""
    path = location.file_path(table, name)
    if not location.exists(path):
        return None
    return [row_to_record(model, row) for row in read_file(location, table, path).to_pylist()]


def _committing_run(runs: Iterable[JobRunRecord], set_id: str) -> JobRunRecord | None:
    committing = [r for r in runs if r.set_id == set_id and r.status in FINAL_WITH_SET]
    return max(committing, key=lambda r: r.recorded_at or r.started_at, default=None)


def _surviving_commit(location: CatalogLocation, set_id: str) -> str:
    """The commit id of the set's surviving files, the one with the most tables ('' if none)."""
    counts: dict[str, int] = {}
    for table in SET_TABLES[:-1]:
        for path in location.list_files(table, f"{set_id}."):
            key, commit_id = split_name(path)
            if key == set_id:
                counts[commit_id] = counts.get(commit_id, 0) + 1
    return max(sorted(counts), key=lambda c: counts[c], default="")


def _disk_record(manifest: DiskManifest, vm_id: str) -> DiskBackupRecord:
    return DiskBackupRecord(
        set_id=manifest.set_id,
        vm_id=vm_id,
        volume_id=manifest.volume_id,
        size_bytes=manifest.size_bytes,
        chunk_size=manifest.chunk_size,
        chunk_count=len(manifest.chunks),
        data_bytes=manifest.data_bytes,
        referenced_stored_bytes=manifest.stored_bytes,
    )


def _set_record(
    run: JobRunRecord, vms: list[VmBackupRecord], disks: list[DiskBackupRecord], format_version: int
) -> BackupSetRecord:
    return BackupSetRecord(
        set_id=run.set_id,
        job_name=run.job_name,
        pool=run.pool,
        cloud=run.cloud,
        started_at=run.started_at,
        finished_at=run.ended_at or run.started_at,
        status="ok" if run.status == "completed" else run.status,
        vm_count=len(vms),
        disk_count=len(disks),
        bytes_read=run.bytes_read,
        bytes_sent=run.bytes_sent,
        bytes_stored=run.bytes_stored,
        logical_bytes=sum(d.size_bytes for d in disks),
        format_version=format_version,
        run_id=run.run_id,
        committed_at=datetime.now(UTC),
    )


def _rebuild_run(
    writer: CatalogWriter, found: CatalogCheck, run_id: str, commit_id: str, done: Rebuilt
) -> None:
    """A lost job run record, written again from the set the run committed (if any)."""
    made = [record for record in (r for _, r in found.committed.values()) if record.run_id == run_id]
    if any(r.run_id == run_id and r.status != "running" for r in found.runs):
        return  # a later (or other) record of the run survives and states how it ended
    if not made:
        done.not_rebuilt.append(
            f"job run {run_id}: nothing else in the pool records it (it committed no set); "
            "its damaged record stays in the catalog's damaged/ directory"
        )
        return
    backup_set = made[0]
    record = JobRunRecord(
        run_id=run_id,
        job_name=backup_set.job_name,
        kind="backup",
        pool=backup_set.pool,
        cloud=backup_set.cloud,
        set_id=backup_set.set_id,
        status="completed" if backup_set.status == "ok" else backup_set.status,
        started_at=backup_set.started_at,
        ended_at=backup_set.finished_at,
        vms_ok=backup_set.vm_count,
        bytes_read=backup_set.bytes_read,
        bytes_sent=backup_set.bytes_sent,
        bytes_stored=backup_set.bytes_stored,
        recorded_at=datetime.now(UTC),
    )
    writer._write_new("job_runs", f"{run_id}.{commit_id}", records_to_table([record], JOB_RUNS, commit_id))
    done.written.append(writer.location.file_path("job_runs", f"{run_id}.{commit_id}"))
