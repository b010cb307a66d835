"""Writes a pool's catalog: new Parquet files only, the commit record last.

Every write creates new files named `<key>.<commit id>.parquet` and never rewrites or appends
to one, so versioned buckets and S3 Object Lock hold the catalog as they hold the chunks. A
backup set's rows go out in the order chunks → disk_backups → vm_backups → backup_sets; the
readers show rows only when a `backup_sets` row with the same `commit_id` exists, so a set
interrupted halfway (or retried) is invisible rather than half there.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from bingobackup.crashpoints import crash_point
from bingobackup.files import fsync_path
from bingobackup.format.manifest import DiskManifest
from catalog.location import PARQUET_SUFFIX, CatalogError, CatalogLocation
from catalog.schema import (
    BACKUP_SETS,
    CHUNKS,
    DISK_BACKUPS,
    JOB_RUNS,
    SCHEMA_VERSION,
    SET_DELETIONS,
    VERIFICATIONS,
    VM_BACKUPS,
    BackupSetRecord,
    DiskBackupRecord,
    JobRunRecord,
    SetDeletionRecord,
    VerificationRecord,
    VmBackupRecord,
    arrow_without_pandas,
    records_to_table,
)


class CatalogWriteError(CatalogError):
    pass


def manifest_table(manifest: DiskManifest, commit_id: str) -> pa.Table:
    """The `chunks` rows of one disk, built column-wise (a 1 TiB disk has 262,144 chunks)."""
    chunks = manifest.chunks
    n = len(chunks)
    with arrow_without_pandas():
        columns = {
            "schema_version": pa.array([SCHEMA_VERSION] * n, pa.int32()),
            "commit_id": pa.array([commit_id] * n, pa.string()),
            "set_id": pa.array([manifest.set_id] * n, pa.string()),
            "volume_id": pa.array([manifest.volume_id] * n, pa.string()),
            "offset": pa.array([c.offset for c in chunks], pa.int64()),
            "length": pa.array([c.length for c in chunks], pa.int64()),
            "digest": pa.array([c.digest for c in chunks], pa.string()),
            "stored_size": pa.array([c.stored_size for c in chunks], pa.int64()),
            "location": pa.array([c.location for c in chunks], pa.string()),
        }
        return pa.Table.from_pydict(columns, schema=CHUNKS)


class CatalogWriter:
    """Appends backup sets and job runs to one pool's catalog (`<root>/catalog/`)."""

    def __init__(self, root: str, filesystem: pafs.FileSystem | None = None) -> None:
        self.location = CatalogLocation(root, filesystem)

    # -- backup sets -----------------------------------------------------------------------

    def write_backup_set(
        self,
        set_record: BackupSetRecord,
        vm_records: Sequence[VmBackupRecord],
        disk_records: Sequence[DiskBackupRecord],
        manifests: Sequence[DiskManifest],
    ) -> BackupSetRecord:
        """Record a set whose chunks are all durable in the pool; returns the committed record.

        The writer stamps the derived columns (counts, logical bytes, per-disk chunk figures,
        `committed_at`) so they always agree with the rows they summarise.
        """
        set_id = set_record.set_id
        by_volume = self._check_set(set_record, vm_records, disk_records, manifests)
        if set_id in self._keys("backup_sets", set_id):
            raise CatalogWriteError(
                f"Backup set {set_id} is already committed in {self.location.path}; catalog files are "
                "never rewritten. Give the new set a new set id."
            )
        commit_id = uuid.uuid4().hex
        disks = [
            disk.model_copy(
                update={
                    "chunk_size": by_volume[disk.volume_id].chunk_size,
                    "chunk_count": len(by_volume[disk.volume_id].chunks),
                    "data_bytes": by_volume[disk.volume_id].data_bytes,
                    "referenced_stored_bytes": by_volume[disk.volume_id].stored_bytes,
                }
            )
            for disk in disk_records
        ]
        committed = set_record.model_copy(
            update={
                "vm_count": len(vm_records),
                "disk_count": len(disk_records),
                "logical_bytes": sum(d.size_bytes for d in disk_records),
                "committed_at": datetime.now(UTC),
            }
        )
        name = f"{set_id}.{commit_id}"
        crash_point("catalog.before-commit")
        chunk_tables = [manifest_table(m, commit_id) for m in manifests]
        chunks = pa.concat_tables(chunk_tables) if chunk_tables else CHUNKS.empty_table()
        self._write_new("chunks", name, chunks)
        self._write_new("disk_backups", name, records_to_table(list(disks), DISK_BACKUPS, commit_id))
        self._write_new("vm_backups", name, records_to_table(list(vm_records), VM_BACKUPS, commit_id))
        crash_point("catalog.mid-write")
        # The commit record goes last: until it is durable, nothing above is visible.
        self._write_new("backup_sets", name, records_to_table([committed], BACKUP_SETS, commit_id))
        crash_point("catalog.after-commit")
        return committed

    def is_committed(self, set_id: str) -> bool:
        """Whether the set's commit record is in the catalog (deleted since or not)."""
        return set_id in self._keys("backup_sets", set_id)

    def _keys(self, table: str, key: str) -> set[str]:
        """The keys of the files named `<key>.<commit id>.parquet` (a key may itself hold dots)."""
        names = (posixpath.basename(p)[: -len(PARQUET_SUFFIX)] for p in self.location.list_files(table, key))
        return {name.rsplit(".", 1)[0] for name in names}

    @staticmethod
    def _check_set(
        set_record: BackupSetRecord,
        vm_records: Sequence[VmBackupRecord],
        disk_records: Sequence[DiskBackupRecord],
        manifests: Sequence[DiskManifest],
    ) -> dict[str, DiskManifest]:
        set_id = set_record.set_id
        _check_key("Backup set id", set_id)
        keyed: list[tuple[str, str, str]] = [
            *(("VM", vm.vm_id, vm.set_id) for vm in vm_records),
            *(("disk", disk.volume_id, disk.set_id) for disk in disk_records),
            *(("manifest", m.volume_id, m.set_id) for m in manifests),
        ]
        strays = [f"{kind} {key} (set {other})" for kind, key, other in keyed if other != set_id]
        if strays:
            raise CatalogWriteError(
                f"Rows of another set were passed with backup set {set_id}: {', '.join(strays)}. "
                "Pass only the VMs, disks and manifests of this set."
            )
        vm_ids = {vm.vm_id for vm in vm_records}
        orphans = sorted(d.volume_id for d in disk_records if d.vm_id not in vm_ids)
        if orphans:
            raise CatalogWriteError(
                f"Disks {', '.join(orphans)} of set {set_id} belong to no VM passed with the set; "
                "add their VM records."
            )
        by_volume = {m.volume_id: m for m in manifests}
        if len(by_volume) != len(manifests):
            raise CatalogWriteError(f"Set {set_id} has two manifests for the same volume; pass one per disk.")
        disk_volumes = {d.volume_id for d in disk_records}
        if len(disk_volumes) != len(disk_records) or disk_volumes != set(by_volume):
            raise CatalogWriteError(
                f"Set {set_id} needs exactly one disk record per manifest: disks without a manifest "
                f"{sorted(disk_volumes - set(by_volume))}, manifests without a disk "
                f"{sorted(set(by_volume) - disk_volumes)}."
            )
        for disk in disk_records:
            manifest_size = by_volume[disk.volume_id].size_bytes
            if manifest_size != disk.size_bytes:
                raise CatalogWriteError(
                    f"Disk {disk.volume_id} of set {set_id} is {disk.size_bytes} bytes but its manifest "
                    f"covers {manifest_size}; record the size of the snapshot that was read."
                )
        return by_volume

    # -- job runs --------------------------------------------------------------------------

    def write_job_run(self, record: JobRunRecord) -> JobRunRecord:
        """Record the state of a run. Call again as the run progresses: each call adds a file."""
        _check_key("Run id", record.run_id)
        stamped = record.model_copy(update={"recorded_at": datetime.now(UTC)})
        commit_id = uuid.uuid4().hex
        self._write_new(
            "job_runs", f"{record.run_id}.{commit_id}", records_to_table([stamped], JOB_RUNS, commit_id)
        )
        return stamped

    # -- set deletions ---------------------------------------------------------------------

    def write_set_deletion(self, record: SetDeletionRecord) -> SetDeletionRecord:
        """The tombstone of a set whose data is already gone from the pool: from now on no view
        shows the set. A new file, like every catalog write."""
        _check_key("Backup set id", record.set_id)
        stamped = record.model_copy(update={"deleted_at": datetime.now(UTC)})
        commit_id = uuid.uuid4().hex
        self._write_new(
            "set_deletions",
            f"{record.set_id}.{commit_id}",
            records_to_table([stamped], SET_DELETIONS, commit_id),
        )
        return stamped

    # -- verifications --------------------------------------------------------------------

    def write_verifications(self, run_id: str, records: Sequence[VerificationRecord]) -> None:
        """Record what verify run `run_id` found, one row per set, in one new file (written
        after the run read everything: a verify that stopped halfway records nothing)."""
        _check_key("Verify run id", run_id)
        strays = sorted({r.run_id for r in records} - {run_id})
        if strays:
            raise CatalogWriteError(
                f"Verification rows of runs {strays} were passed with verify run {run_id}; pass only its own."
            )
        if not records:
            return
        commit_id = uuid.uuid4().hex
        table = records_to_table(list(records), VERIFICATIONS, commit_id)
        self._write_new("verifications", f"{run_id}.{commit_id}", table)

    # -- files -----------------------------------------------------------------------------

    def _write_new(self, table: str, name: str, data: pa.Table) -> None:
        path = self.location.file_path(table, name)
        if self.location.exists(path):  # commit ids are random: this is a bug, never a retry
            raise CatalogWriteError(f"Catalog file {path} already exists and is never rewritten.")
        try:
            if self.location.is_local:
                _write_local_durably(path, data)
            else:
                # An object store makes an upload visible whole or not at all when the stream closes.
                self._ensure_dir(table)
                with self.location.filesystem.open_output_stream(path) as out:
                    _write_parquet(data, out)
        except OSError as exc:
            raise CatalogWriteError(
                f"Could not write catalog file {path}: {exc}. Check free space and permissions of the pool; "
                "nothing of this set is visible until the write succeeds."
            ) from exc

    def _ensure_dir(self, table: str) -> None:
        # Object stores have no directories; a marker object would be one more write to repeat.
        directory = self.location.table_dir(table)
        if self.location.filesystem.type_name not in _DIRECTORYLESS and not self.location.exists(directory):
            self.location.filesystem.create_dir(directory, recursive=True)


_DIRECTORYLESS = frozenset({"s3", "gcs", "abfs"})


def _check_key(what: str, key: str) -> None:
    if not key or "/" in key or "\\" in key or key.startswith((".", "_")):
        raise CatalogWriteError(
            f"{what} {key!r} cannot name a catalog file: use letters, digits, '-', '.' or ':' "
            "without '/' or '\\', and do not start with '.' or '_'."
        )


def _write_parquet(data: pa.Table, out: Any) -> None:
    # Page checksums let readers tell a flipped byte from data (`catalog.health`).
    pq.write_table(data, out, compression="zstd", write_page_checksum=True)


def _write_local_durably(path: str, data: pa.Table) -> None:
    """Temp file, fsync, rename, fsync the directory: a crash leaves the old state or the new file."""
    directory = os.path.dirname(path)
    created = not os.path.isdir(directory)
    os.makedirs(directory, exist_ok=True)
    if created:
        fsync_path(os.path.dirname(directory))
        fsync_path(os.path.dirname(os.path.dirname(directory)))
    temp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temp, "xb") as out:
            _write_parquet(data, out)
            out.flush()
            os.fsync(out.fileno())
        os.rename(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    fsync_path(directory)
