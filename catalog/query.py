"""Reading the catalog: SQL over the views, and the lookups restore and the CLI need."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
from pydantic import BaseModel, ConfigDict

from bingobackup.format.manifest import ChunkRef, DiskManifest
from bingobackup.mover.errors import RestoreChunkError
from catalog import analytics
from catalog.location import CatalogError, CatalogLocation
from catalog.schema import (
    BackupSetRecord,
    DiskBackupRecord,
    VmBackupRecord,
    row_to_record,
)
from catalog.views import VIEW_NAMES, define_views, describe_views

# How many of the backup sets sharing a damaged chunk its error names.
_SETS_SHOWN = 10


class CatalogQueryError(CatalogError):
    pass


class CatalogNotFoundError(CatalogError):
    pass


class CatalogRoot(BaseModel):
    """One pool to read: its name (the views' `pool` column), root, and filesystem (None: local/URI)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    pool: str
    root: str
    filesystem: pafs.FileSystem | None = None


class VmBackup(BaseModel):
    """One VM of one committed set, with its disks: what a VM restore starts from."""

    model_config = ConfigDict(frozen=True)

    pool: str
    backup_set: BackupSetRecord
    vm: VmBackupRecord
    disks: tuple[DiskBackupRecord, ...]


RootLike = CatalogRoot | tuple[str, str] | tuple[str, str, pafs.FileSystem | None]


def _as_root(root: RootLike) -> CatalogRoot:
    if isinstance(root, CatalogRoot):
        return root
    filesystem = root[2] if len(root) > 2 else None
    return CatalogRoot(pool=root[0], root=root[1], filesystem=filesystem)


def _utc(moment: datetime | None) -> datetime | None:
    # Naive times from a terminal or notebook mean UTC, as every time in the catalog does.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class Catalog:
    """An in-memory DuckDB over the catalogs of one or more pools.

    The views show the files present when the catalog was opened (or last `refresh()`ed).
    """

    def __init__(self, roots: Sequence[RootLike]) -> None:
        self.roots = [_as_root(r) for r in roots]
        names = [r.pool for r in self.roots]
        if len(set(names)) != len(names):
            raise CatalogError(f"Pool names must be unique to tell their sets apart; got {names}.")
        self._pools = [(r.pool, CatalogLocation(r.root, r.filesystem)) for r in self.roots]
        self._con = duckdb.connect(":memory:")
        self.refresh()

    @classmethod
    def open(cls, root: str, pool: str | None = None, filesystem: pafs.FileSystem | None = None) -> Catalog:
        """The catalog of one pool; `root` may be a local path or a URI such as `s3://bucket/pool`."""
        name = pool or root.rstrip("/").rsplit("/", 1)[-1] or "pool"
        return cls([CatalogRoot(pool=name, root=root, filesystem=filesystem)])

    def refresh(self) -> None:
        """See files written since the catalog was opened."""
        define_views(self._con, self._pools)

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- SQL ---------------------------------------------------------------------------------

    def _relation(self, sql: str, params: dict[str, Any] | None) -> duckdb.DuckDBPyRelation:
        try:
            relation = self._con.sql(sql, params=params)
        except duckdb.Error as exc:
            raise CatalogQueryError(
                f"The catalog query failed: {exc}\nQuery the views (columns in brackets):\n"
                f"{describe_views(self._con)}"
            ) from exc
        if relation is None:
            raise CatalogQueryError("The catalog query returned no result set; run a SELECT over the views.")
        return relation

    def query(self, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Run SQL over the views (`$name` placeholders take `params`)."""
        try:
            return self._relation(sql, params).df()
        except duckdb.Error as exc:  # errors found only while running, e.g. a failed cast
            raise CatalogQueryError(f"The catalog query failed while running: {exc}") from exc

    def query_arrow(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        try:
            return self._relation(sql, params).to_arrow_table()
        except duckdb.Error as exc:
            raise CatalogQueryError(f"The catalog query failed while running: {exc}") from exc

    def _rows(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.query_arrow(sql, params).to_pylist()

    @property
    def views(self) -> tuple[str, ...]:
        return VIEW_NAMES

    def describe(self) -> str:
        """The views and their columns, one per line."""
        return describe_views(self._con)

    # -- backup sets ------------------------------------------------------------------------

    def list_sets(
        self,
        vm: str | None = None,
        job: str | None = None,
        pool: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> pd.DataFrame:
        """Committed sets, newest first; `vm` is a VM name or id, `since` ≤ started_at < `until`."""
        return self.query(
            """
            SELECT * FROM backup_sets s
            WHERE ($pool IS NULL OR s.pool = $pool)
              AND ($job IS NULL OR s.job_name = $job)
              AND ($since IS NULL OR s.started_at >= $since)
              AND ($until IS NULL OR s.started_at < $until)
              AND ($vm IS NULL OR EXISTS (
                    SELECT 1 FROM vm_backups v
                    WHERE v.pool = s.pool AND v.set_id = s.set_id AND (v.vm_id = $vm OR v.vm_name = $vm)))
            ORDER BY s.started_at DESC, s.set_id
            """,
            {"vm": vm, "job": job, "pool": pool, "since": _utc(since), "until": _utc(until)},
        )

    def latest_set(self, vm: str, pool: str | None = None) -> BackupSetRecord | None:
        """The newest committed set holding a good backup of `vm` (name or id), or None."""
        rows = self._rows(
            """
            SELECT s.* FROM backup_sets s JOIN vm_backups v ON v.pool = s.pool AND v.set_id = s.set_id
            WHERE (v.vm_id = $vm OR v.vm_name = $vm) AND v.status = 'ok' AND ($pool IS NULL OR s.pool = $pool)
            ORDER BY s.started_at DESC, s.committed_at DESC LIMIT 1
            """,
            {"vm": vm, "pool": pool},
        )
        return row_to_record(BackupSetRecord, rows[0]) if rows else None

    def backup_set(self, set_id: str, pool: str | None = None) -> BackupSetRecord:
        """The committed set `set_id`; its `pool` is the name this catalog reads the pool under."""
        rows = self._rows(
            "SELECT * FROM backup_sets WHERE set_id = $set_id AND ($pool IS NULL OR pool = $pool)",
            {"set_id": set_id, "pool": pool},
        )
        where = f" in pool {pool}" if pool else f" in pools {[r.pool for r in self.roots]}"
        if not rows:
            raise CatalogNotFoundError(
                f"No committed backup set {set_id}{where}. List the sets with `bingobackup sets list`."
            )
        if len(rows) > 1:
            raise CatalogQueryError(
                f"Backup set {set_id} exists in pools {sorted(r['pool'] for r in rows)}; say which pool."
            )
        return row_to_record(BackupSetRecord, rows[0])

    def vm_backup(self, set_id: str, vm: str, pool: str | None = None) -> VmBackup:
        """VM `vm` (name or id) of set `set_id`, with its disks (system disk first)."""
        backup_set = self.backup_set(set_id, pool)
        params = {"set_id": set_id, "vm": vm, "pool": backup_set.pool}
        vms = self._rows(
            "SELECT * FROM vm_backups WHERE pool = $pool AND set_id = $set_id AND (vm_id = $vm OR vm_name = $vm)",
            params,
        )
        if not vms:
            raise CatalogNotFoundError(
                f"Backup set {set_id} holds no VM named or with id {vm!r}. "
                f"See its VMs with: SELECT vm_id, vm_name FROM vm_backups WHERE set_id = '{set_id}'."
            )
        if len(vms) > 1:
            raise CatalogQueryError(
                f"Several VMs of set {set_id} are named {vm!r} ({[v['vm_id'] for v in vms]}); use the VM id."
            )
        record = row_to_record(VmBackupRecord, vms[0])
        disks = self._rows(
            "SELECT * FROM disk_backups WHERE pool = $pool AND set_id = $set_id AND vm_id = $vm_id "
            "ORDER BY is_root DESC, device_name, volume_id",
            {"pool": backup_set.pool, "set_id": set_id, "vm_id": record.vm_id},
        )
        return VmBackup(
            pool=backup_set.pool,
            backup_set=backup_set,
            vm=record,
            disks=tuple(row_to_record(DiskBackupRecord, d) for d in disks),
        )

    def disk_manifest(self, set_id: str, volume_id: str, pool: str | None = None) -> DiskManifest:
        """The chunk manifest of one backed-up disk, chunks in disk order."""
        backup_set = self.backup_set(set_id, pool)
        params = {"pool": backup_set.pool, "set_id": set_id, "volume_id": volume_id}
        disks = self._rows(
            "SELECT size_bytes, chunk_size FROM disk_backups "
            "WHERE pool = $pool AND set_id = $set_id AND volume_id = $volume_id",
            params,
        )
        if not disks:
            raise CatalogNotFoundError(
                f"Backup set {set_id} holds no disk {volume_id}. "
                f"See its disks with: SELECT vm_id, volume_id, name FROM disk_backups WHERE set_id = '{set_id}'."
            )
        chunks = self.query_arrow(
            'SELECT "offset", length, digest, stored_size, location FROM chunks '
            'WHERE pool = $pool AND set_id = $set_id AND volume_id = $volume_id ORDER BY "offset"',
            params,
        )
        return DiskManifest(
            set_id=set_id,
            volume_id=volume_id,
            size_bytes=disks[0]["size_bytes"],
            chunk_size=disks[0]["chunk_size"],
            chunks=tuple(ChunkRef.model_validate(row) for row in chunks.to_pylist()),
        )

    def sets_sharing_chunk(self, digest: str, pool: str) -> list[str]:
        """The committed sets of `pool` whose disks hold chunk `digest`, oldest first: a damaged
        chunk is damaged in each of them, so none of them can restore that region."""
        rows = self._rows(
            "SELECT s.set_id FROM backup_sets s WHERE s.pool = $pool AND EXISTS ("
            "SELECT 1 FROM chunks c WHERE c.pool = s.pool AND c.set_id = s.set_id AND c.digest = $digest) "
            "ORDER BY s.started_at, s.set_id",
            {"pool": pool, "digest": digest},
        )
        return [row["set_id"] for row in rows]

    def explain_unreadable_chunk(self, error: RestoreChunkError, pool: str) -> RestoreChunkError:
        """`error` naming the backup sets that hold the same chunk: another set restores the
        disk only if it is not one of them."""
        try:
            sets = self.sets_sharing_chunk(error.digest, pool)
        except CatalogError:  # the chunk's own error matters more than this note
            return error
        if len(sets) <= 1:
            note = "No other backup set in the pool holds this chunk."
        else:
            shown = ", ".join(sets[:_SETS_SHOWN]) + (
                f" and {len(sets) - _SETS_SHOWN} more" if len(sets) > _SETS_SHOWN else ""
            )
            note = (
                f"{len(sets)} backup sets hold this chunk and cannot restore this region either: {shown} "
                f"(list them: SELECT DISTINCT set_id FROM chunks WHERE digest = '{error.digest}')."
            )
        return RestoreChunkError(f"{str(error).rstrip('.')}. {note}", error.offset, error.digest)

    # -- analyst helpers (SQL in catalog.analytics) -------------------------------------------

    def dedup_ratio_by_set(self) -> pd.DataFrame:
        return self.query(analytics.DEDUP_RATIO_BY_SET)

    def media_contents(self) -> pd.DataFrame:
        """Tape cartridges and optical discs: which set and disk each one holds, and how much."""
        return self.query(analytics.MEDIA_CONTENTS)

    def throughput_by_run(self) -> pd.DataFrame:
        return self.query(analytics.THROUGHPUT_BY_RUN)

    def growth_by_vm(self) -> pd.DataFrame:
        return self.query(analytics.GROWTH_BY_VM)

    def success_rate_by_job(self) -> pd.DataFrame:
        return self.query(analytics.SUCCESS_RATE_BY_JOB)
