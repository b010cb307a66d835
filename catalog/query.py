"""Reading the catalog: SQL over the views, and the lookups restore and the CLI need."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
from pydantic import BaseModel, ConfigDict

from bingobackup.format.manifest import ChunkRef, DiskManifest
from bingobackup.mover.errors import RestoreChunkError
from catalog import analytics
from catalog.health import DamagedFile, check_catalog
from catalog.location import CatalogError, CatalogLocation

if TYPE_CHECKING:
    import pandas as pd
from catalog.schema import (
    REBUILT_VM_STATUS,
    BackupSetRecord,
    DiskBackupRecord,
    VmBackupRecord,
    row_to_record,
)
from catalog.views import VIEW_NAMES, define_views, describe_views

# How many of the backup sets sharing a damaged chunk its error names.
_SETS_SHOWN = 10

T = TypeVar("T")


class CatalogQueryError(CatalogError):
    pass


class CatalogNotFoundError(CatalogError):
    pass


class CatalogDamageWarning(UserWarning):
    """A damaged catalog file was skipped; the rest of the pool reads on."""


# Set once the pool's files are registered: from then on DuckDB reads nothing but them —
# no files, databases, extensions or URLs of the host — and no query can undo that.
_LOCKDOWN = (
    "SET enable_external_access = false",
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET lock_configuration = true",
)

_RUN_A_SELECT = "Run one SELECT over the views (WITH, FROM, DESCRIBE, SHOW and SUMMARIZE read too)."


def warn_damaged(pool: str, damaged: DamagedFile) -> None:
    warnings.warn(
        f"Pool {pool}: skipped the damaged catalog file {damaged}. The other sets read on; check and "
        f"rebuild the catalog with `bingobackup catalog check --pool {pool}` and `catalog rebuild`.",
        CatalogDamageWarning,
        stacklevel=4,
    )


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
    Queries only read: DuckDB is locked down once the pool's files are registered, and every
    statement but a SELECT is refused. A query that trips over a damaged file finds every
    damaged file of the pools, reports each to `on_damage` (default: a CatalogDamageWarning)
    and runs again without them, so one bad file never blocks the rest of a pool.
    """

    def __init__(
        self,
        roots: Sequence[RootLike],
        on_damage: Callable[[str, DamagedFile], None] = warn_damaged,
    ) -> None:
        self.roots = [_as_root(r) for r in roots]
        names = [r.pool for r in self.roots]
        if len(set(names)) != len(names):
            raise CatalogError(f"Pool names must be unique to tell their sets apart; got {names}.")
        self._pools = [(r.pool, CatalogLocation(r.root, r.filesystem)) for r in self.roots]
        self._on_damage = on_damage
        self.damaged: dict[str, DamagedFile] = {}  # path → why it is skipped
        self._checked = False  # every file read once since the views were defined
        self._con = self._connect()

    @classmethod
    def open(cls, root: str, pool: str | None = None, filesystem: pafs.FileSystem | None = None) -> Catalog:
        """The catalog of one pool; `root` may be a local path or a URI such as `s3://bucket/pool`."""
        name = pool or root.rstrip("/").rsplit("/", 1)[-1] or "pool"
        return cls([CatalogRoot(pool=name, root=root, filesystem=filesystem)])

    def _connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(":memory:")
        try:
            define_views(con, self._pools, skip=self.damaged)
            for setting in _LOCKDOWN:
                con.execute(setting)
        except BaseException:
            con.close()
            raise
        return con

    def refresh(self) -> None:
        """See files written (or rebuilt) since the catalog was opened."""
        self.damaged, self._checked = {}, False
        old, self._con = self._con, self._connect()
        old.close()

    def _skip_damaged(self) -> bool:
        """Find every damaged file of the pools, stop reading them; whether any was new."""
        if self._checked:  # a failing query of the analyst's own need not read the catalog each time
            return False
        self._checked = True
        new = False
        for pool, location in self._pools:
            for damaged in check_catalog(location).damaged:
                if damaged.path not in self.damaged:
                    self.damaged[damaged.path] = damaged
                    self._on_damage(pool, damaged)
                    new = True
        if new:
            old, self._con = self._con, self._connect()
            old.close()
        return new

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- SQL ---------------------------------------------------------------------------------

    def _check_read_only(self, sql: str) -> None:
        try:
            statements = self._con.extract_statements(sql)
        except duckdb.Error as exc:
            raise CatalogQueryError(f"The catalog query is not valid SQL: {exc}") from exc
        if len(statements) != 1:
            raise CatalogQueryError(
                f"The catalog is read-only and runs one statement at a time; this text holds "
                f"{len(statements)}. {_RUN_A_SELECT}"
            )
        kind = statements[0].type
        if kind != duckdb.StatementType.SELECT:
            raise CatalogQueryError(
                f"The catalog is read-only: {kind.name} statements are refused. {_RUN_A_SELECT}"
            )

    def _relation(self, sql: str, params: dict[str, Any] | None) -> duckdb.DuckDBPyRelation:
        try:
            relation = self._con.sql(sql, params=params)
        except duckdb.PermissionException as exc:
            raise _outside_the_catalog(exc) from exc
        except duckdb.Error as exc:
            raise CatalogQueryError(
                f"The catalog query failed: {exc}\nQuery the views (columns in brackets):\n"
                f"{describe_views(self._con)}"
            ) from exc
        if relation is None:
            raise CatalogQueryError("The catalog query returned no result set; run a SELECT over the views.")
        return relation

    def _run(
        self, sql: str, params: dict[str, Any] | None, fetch: Callable[[duckdb.DuckDBPyRelation], T]
    ) -> T:
        self._check_read_only(sql)
        try:
            return fetch(self._relation(sql, params))
        except duckdb.PermissionException as exc:
            raise _outside_the_catalog(exc) from exc
        except duckdb.Error as exc:  # errors found only while running: a failed cast, or a damaged file
            if self._skip_damaged():
                return self._run(sql, params, fetch)
            raise CatalogQueryError(f"The catalog query failed while running: {exc}") from exc

    def query(self, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Run one SELECT over the views (`$name` placeholders take `params`)."""
        return self._run(sql, params, lambda relation: relation.df())

    def query_arrow(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        return self._run(sql, params, lambda relation: relation.to_arrow_table())

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
        """Committed sets, newest first; `vm` is a VM name or id, `since` ≤ started_at < `until`.
        Each row ends with the set's newest verification (`last_verified_at`, `last_verify_status`,
        `last_verify_sampled_percent`; NULL when never verified)."""
        return self.query(
            f"""
            SELECT s.*, v.verified_at AS last_verified_at, v.status AS last_verify_status,
                   v.sampled_percent AS last_verify_sampled_percent
            FROM backup_sets s LEFT JOIN ({_NEWEST_VERIFICATION}) v ON v.pool = s.pool AND v.set_id = s.set_id
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
        if record.status == REBUILT_VM_STATUS:
            raise CatalogError(
                f"VM {vm} of set {set_id} was rebuilt from the pool without its configuration (the "
                f"catalog file that held it was damaged): it cannot be restored as a VM. Write its "
                f"disks with `bingobackup export-disk --set {set_id} --volume VOLUME_ID`."
            )
        disks = self._rows(
            "SELECT * FROM disk_backups WHERE pool = $pool AND set_id = $set_id AND vm_id = $vm_id "
            "ORDER BY is_root DESC, device_name, volume_id",
            {"pool": backup_set.pool, "set_id": set_id, "vm_id": record.vm_id},
        )
        if record.status == "ok" and not disks:
            raise CatalogError(
                f"VM {vm} of set {set_id} has no disk rows in the catalog: a catalog file is damaged or "
                f"missing. Run `bingobackup catalog check --pool {backup_set.pool}`, then `catalog rebuild`."
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
            "SELECT size_bytes, chunk_size, chunk_count FROM disk_backups "
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
        expected = disks[0]["chunk_count"]
        if expected is not None and chunks.num_rows != expected:
            raise CatalogError(
                f"The catalog holds {chunks.num_rows} of the {expected} chunk rows of disk {volume_id} "
                f"of set {set_id} in pool {backup_set.pool}: a catalog file is damaged or missing. "
                f"Run `bingobackup catalog check --pool {backup_set.pool}`, then `catalog rebuild`."
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

    # -- verify -------------------------------------------------------------------------------

    def sets_to_verify(
        self,
        pool: str,
        set_id: str | None = None,
        vm: str | None = None,
        job: str | None = None,
        verified_since: datetime | None = None,
    ) -> tuple[list[str], list[str]]:
        """(sets to verify, sets skipped) of `pool`, oldest first: every committed set, or the one
        named, those holding VM `vm` (name or id), or those job `job` made. With `verified_since`,
        a set whose newest full verification (every chunk read, none damaged) finished at or after
        it is skipped: PBS's "re-verify after N days"."""
        rows = self._rows(
            """
            SELECT s.set_id, EXISTS (
                SELECT 1 FROM verifications v
                WHERE v.pool = s.pool AND v.set_id = s.set_id AND v.status = 'ok'
                  AND v.sampled_percent >= 100 AND v.verified_at >= $since) AS recent
            FROM backup_sets s
            WHERE s.pool = $pool
              AND ($set_id IS NULL OR s.set_id = $set_id)
              AND ($job IS NULL OR s.job_name = $job)
              AND ($vm IS NULL OR EXISTS (
                    SELECT 1 FROM vm_backups v
                    WHERE v.pool = s.pool AND v.set_id = s.set_id AND (v.vm_id = $vm OR v.vm_name = $vm)))
            ORDER BY s.started_at, s.set_id
            """,
            {
                "pool": pool,
                "set_id": set_id,
                "vm": vm,
                "job": job,
                "since": _utc(verified_since) or datetime.max.replace(tzinfo=UTC),
            },
        )
        if set_id is not None and not rows:
            self.backup_set(set_id, pool)  # raises, naming the set and how to list them
        return [r["set_id"] for r in rows if not r["recent"]], [r["set_id"] for r in rows if r["recent"]]

    def disks_of_set(self, set_id: str, pool: str) -> list[dict[str, Any]]:
        """The disks of a set with their VM: set_id, vm_id, vm_name, volume_id, name, device_name."""
        return self._rows(
            "SELECT d.set_id, d.vm_id, coalesce(v.vm_name, d.vm_id) AS vm_name, d.volume_id, d.name, "
            "d.device_name FROM disk_backups d LEFT JOIN vm_backups v USING (pool, set_id, vm_id) "
            "WHERE d.pool = $pool AND d.set_id = $set_id ORDER BY d.vm_id, d.is_root DESC, d.device_name",
            {"pool": pool, "set_id": set_id},
        )

    def chunk_references(self, digests: Sequence[str], pool: str) -> list[dict[str, Any]]:
        """Every committed disk that holds one of `digests`: digest, set_id, vm_id, vm_name,
        volume_id, name, device_name, offset (a damaged chunk is damaged in each of them)."""
        if not digests:
            return []
        return self._rows(
            "SELECT c.digest, c.set_id, d.vm_id, coalesce(v.vm_name, d.vm_id) AS vm_name, c.volume_id, "
            'd.name, d.device_name, c."offset" FROM chunks c '
            "JOIN disk_backups d ON d.pool = c.pool AND d.set_id = c.set_id AND d.volume_id = c.volume_id "
            "LEFT JOIN vm_backups v ON v.pool = d.pool AND v.set_id = d.set_id AND v.vm_id = d.vm_id "
            'WHERE c.pool = $pool AND list_contains($digests, c.digest) ORDER BY c.set_id, c.volume_id, c."offset"',
            {"pool": pool, "digests": list(digests)},
        )

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

    def removed_sets(self) -> pd.DataFrame:
        """What retention (and `sets delete`) removed: the tombstones, newest first."""
        return self.query(analytics.REMOVED_SETS)


# Each set's newest verification row.
_NEWEST_VERIFICATION = (
    "SELECT * FROM verifications "
    "QUALIFY row_number() OVER (PARTITION BY pool, set_id ORDER BY verified_at DESC, commit_id DESC) = 1"
)


def _outside_the_catalog(exc: duckdb.Error) -> CatalogQueryError:
    return CatalogQueryError(
        f"The catalog is read-only and a query may read only its views, not files, databases, "
        f"extensions or URLs of this host ({exc}). {_RUN_A_SELECT}"
    )
