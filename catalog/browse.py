"""Browsing backup sets the two ways the guide shows them (6.1), for choosing what to restore.

- host view: cloud → cluster → VM → points in time (sets, newest first) → disks
- job view: job → runs (newest first) → VMs

Both filter by pool and search VMs by name (case-insensitive substring) or exact id. One
DuckDB query each gives the flat rows; they are nested here so the CLI, notebooks and the
restore UI share one shape.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from datetime import datetime
from itertools import groupby
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from catalog.query import Catalog

T = TypeVar("T")


class BrowseEntry(BaseModel):
    model_config = ConfigDict(frozen=True)


class DiskEntry(BrowseEntry):
    volume_id: str
    name: str
    device_name: str
    size_bytes: int
    is_root: bool
    storage_id: str


class PointInTime(BrowseEntry):
    """One backup of one VM: what `source: {vm, set}` of a restore spec names."""

    pool: str
    set_id: str
    started_at: datetime
    job_name: str
    status: str  # the VM's status in that set: only `ok` can be restored
    disks: tuple[DiskEntry, ...]


class VmEntry(BrowseEntry):
    vm_id: str
    vm_name: str
    points: tuple[PointInTime, ...]


class ClusterEntry(BrowseEntry):
    cluster_id: str
    vms: tuple[VmEntry, ...]


class CloudEntry(BrowseEntry):
    cloud: str
    clusters: tuple[ClusterEntry, ...]


class RunVm(BrowseEntry):
    vm_id: str
    vm_name: str
    status: str
    error: str
    disk_count: int
    bytes_read: int


class RunEntry(BrowseEntry):
    pool: str
    set_id: str
    run_id: str
    started_at: datetime
    finished_at: datetime
    status: str
    vms: tuple[RunVm, ...]


class JobEntry(BrowseEntry):
    job_name: str
    runs: tuple[RunEntry, ...]


# `contains` instead of LIKE: a `_` or `%` in a VM name is a character, not a wildcard.
_FILTERS = """
    ($pool IS NULL OR s.pool = $pool)
    AND ($vm IS NULL OR v.vm_id = $vm OR contains(lower(v.vm_name), lower($vm)))
"""

_HOST_ROWS = f"""
    SELECT s.cloud, v.cluster_id, v.vm_id, v.vm_name, s.pool, s.set_id, s.started_at, s.job_name,
           v.status, d.volume_id, d.name, d.device_name, d.size_bytes, d.is_root, d.storage_id
    FROM backup_sets s
    JOIN vm_backups v ON v.pool = s.pool AND v.set_id = s.set_id
    LEFT JOIN disk_backups d ON d.pool = v.pool AND d.set_id = v.set_id AND d.vm_id = v.vm_id
    WHERE {_FILTERS}
    ORDER BY s.cloud, v.cluster_id, v.vm_name, v.vm_id, s.started_at DESC, s.pool, s.set_id,
             d.is_root DESC, d.device_name, d.volume_id
"""

_JOB_ROWS = f"""
    SELECT s.job_name, s.pool, s.set_id, s.run_id, s.started_at, s.finished_at, s.status AS set_status,
           v.vm_id, v.vm_name, v.status, v.error, v.bytes_read,
           (SELECT count(*) FROM disk_backups d
            WHERE d.pool = v.pool AND d.set_id = v.set_id AND d.vm_id = v.vm_id) AS disk_count
    FROM backup_sets s
    JOIN vm_backups v ON v.pool = s.pool AND v.set_id = s.set_id
    WHERE {_FILTERS}
    ORDER BY s.job_name, s.started_at DESC, s.pool, s.set_id, v.vm_name, v.vm_id
"""


def _grouped(
    rows: Iterable[dict[str, Any]],
    key: Callable[[dict[str, Any]], Hashable],
    build: Callable[[list[dict[str, Any]]], T],
) -> tuple[T, ...]:
    """Consecutive rows with the same key become one entry (the SQL orders them so)."""
    return tuple(build(list(group)) for _, group in groupby(rows, key=key))


def _params(pool: str | None, vm: str | None) -> dict[str, Any]:
    return {"pool": pool, "vm": vm or None}


def _disks(rows: list[dict[str, Any]]) -> Iterator[DiskEntry]:
    for r in rows:
        if r["volume_id"] is not None:  # a VM whose backup failed has no disk rows
            yield DiskEntry(
                volume_id=r["volume_id"],
                name=r["name"] or "",
                device_name=r["device_name"] or "",
                size_bytes=r["size_bytes"] or 0,
                is_root=bool(r["is_root"]),
                storage_id=r["storage_id"] or "",
            )


def _point(rows: list[dict[str, Any]]) -> PointInTime:
    first = rows[0]
    return PointInTime(
        pool=first["pool"],
        set_id=first["set_id"],
        started_at=first["started_at"],
        job_name=first["job_name"],
        status=first["status"] or "",
        disks=tuple(_disks(rows)),
    )


def _vm(rows: list[dict[str, Any]]) -> VmEntry:
    return VmEntry(
        vm_id=rows[0]["vm_id"],
        vm_name=rows[0]["vm_name"],
        points=_grouped(rows, lambda r: (r["pool"], r["set_id"]), _point),
    )


def _cluster(rows: list[dict[str, Any]]) -> ClusterEntry:
    return ClusterEntry(cluster_id=rows[0]["cluster_id"] or "", vms=_grouped(rows, lambda r: r["vm_id"], _vm))


def _cloud(rows: list[dict[str, Any]]) -> CloudEntry:
    return CloudEntry(cloud=rows[0]["cloud"], clusters=_grouped(rows, lambda r: r["cluster_id"], _cluster))


def browse_by_host(cat: Catalog, *, pool: str | None = None, vm: str | None = None) -> tuple[CloudEntry, ...]:
    """cloud → cluster → VM → points in time → disks, over every committed set of the catalog."""
    rows = cat.query_arrow(_HOST_ROWS, _params(pool, vm)).to_pylist()
    return _grouped(rows, lambda r: r["cloud"], _cloud)


def _run(rows: list[dict[str, Any]]) -> RunEntry:
    first = rows[0]
    return RunEntry(
        pool=first["pool"],
        set_id=first["set_id"],
        run_id=first["run_id"] or "",
        started_at=first["started_at"],
        finished_at=first["finished_at"],
        status=first["set_status"] or "",
        vms=tuple(
            RunVm(
                vm_id=r["vm_id"],
                vm_name=r["vm_name"],
                status=r["status"] or "",
                error=r["error"] or "",
                disk_count=r["disk_count"],
                bytes_read=r["bytes_read"] or 0,
            )
            for r in rows
        ),
    )


def _job(rows: list[dict[str, Any]]) -> JobEntry:
    return JobEntry(
        job_name=rows[0]["job_name"], runs=_grouped(rows, lambda r: (r["pool"], r["set_id"]), _run)
    )


def browse_by_job(cat: Catalog, *, pool: str | None = None, vm: str | None = None) -> tuple[JobEntry, ...]:
    """job → runs (each run's committed set) → VMs; a VM search keeps only runs holding a match."""
    rows = cat.query_arrow(_JOB_ROWS, _params(pool, vm)).to_pylist()
    return _grouped(rows, lambda r: r["job_name"], _job)
