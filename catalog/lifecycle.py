"""Prune and set deletion over one pool's catalog (docs/lifecycle.md).

`plan_prune` reads every VM's points in time from the views and applies the retention policy
(`bingobackup.lifecycle.retention`) per job and VM; `delete_sets` removes sets from the pool
and then writes their tombstones (`set_deletions`), after which no view shows them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from bingobackup.crashpoints import crash_point
from bingobackup.errors import BingoBackupError
from bingobackup.lifecycle.deletion import SetLockedError, delete_set_from_pool, released_media
from bingobackup.lifecycle.retention import SetPlan, SetPoint, Verdict, apply_policy, plan_sets
from bingobackup.pools.pool import Pool
from bingobackup.specs.retention import RetentionPolicy
from catalog.schema import BackupSetRecord, SetDeletionRecord, row_to_record
from catalog.writer import CatalogWriter

if TYPE_CHECKING:  # the queries (DuckDB) are the caller's: a backup's cleanup needs none
    from catalog.query import Catalog


def remove_uncommitted_sets(pool: Pool, writer: CatalogWriter, job_name: str) -> list[str]:
    """Removes the manifests earlier runs of `job_name` saved in `pool` but never committed in
    its catalog (killed between a disk's commit and the set's): invisible to every reader,
    they would pin their chunks against garbage collection for good. Returns those set ids.

    Call it as a run of the job starts, when no other run of the job is active (the job's
    concurrency slot), as the cloud's leftovers are cleaned; a set of another job, or one
    whose commit record exists, is never touched."""
    if not pool.registers_writers:
        return []  # media pools expire sets by media; write-once storage cannot delete
    ours = re.compile(rf"{re.escape(job_name)}-\d{{8}}T\d{{6}}Z-[0-9a-f]{{6}}")  # new_set_id's form
    candidates = sorted({set_id for set_id, _ in pool.list_manifests() if ours.fullmatch(set_id)})
    uncommitted = [set_id for set_id in candidates if not writer.is_committed(set_id)]
    for set_id in uncommitted:
        pool.delete_set(set_id)
    return uncommitted


NO_VM = "(no VM)"  # the group of a set whose catalog rows name no VM: nothing in it restores


@dataclass(frozen=True)
class JobRetention:
    """The policy a job's sets are pruned by, and the time zone its buckets are in."""

    policy: RetentionPolicy | None
    timezone: str = "UTC"
    source: str = "job"  # "job" | "pool default" | "none": shown in the prune table


@dataclass(frozen=True)
class VmPlan:
    """One VM's sets under one job, newest first, with what the policy says of each."""

    job_name: str
    vm_id: str
    vm_name: str
    retention: JobRetention
    verdicts: tuple[Verdict, ...]


@dataclass
class PrunePlan:
    pool: str
    vms: list[VmPlan] = field(default_factory=list)
    sets: dict[str, SetPlan] = field(default_factory=dict)
    records: dict[str, BackupSetRecord] = field(default_factory=dict)
    unmanaged_jobs: list[str] = field(default_factory=list)  # no retention: every set kept

    @property
    def to_remove(self) -> list[str]:
        """The sets no VM keeps, oldest first."""
        gone = [s for s, plan in self.sets.items() if not plan.keep]
        return sorted(gone, key=lambda s: (self.records[s].started_at, s))


_POINTS = """
SELECT s.set_id, s.job_name, s.started_at, s.status AS set_status, v.vm_id, v.vm_name, v.status AS vm_status
FROM backup_sets s LEFT JOIN vm_backups v ON v.pool = s.pool AND v.set_id = s.set_id
WHERE s.pool = $pool AND ($job IS NULL OR s.job_name = $job)
ORDER BY s.job_name, v.vm_id, s.started_at
"""


def plan_prune(
    catalog: Catalog,
    pool: str,
    retention_of: Callable[[str], JobRetention],
    now: datetime,
    job: str | None = None,
) -> PrunePlan:
    """What a prune of `pool` (only `job`'s sets, when given) keeps and removes. Each VM of each
    job is one group (counted per VM, not per run); `retention_of(job_name)` gives its policy.
    A VM's backup counts toward a rule only when it is good in that set (the VM's own status
    `ok`, in a set that is not `failed`); a set goes only when no VM in it keeps it."""
    plan = PrunePlan(pool)
    rows = catalog.query_arrow(_POINTS, {"pool": pool, "job": job}).to_pylist()
    set_rows = catalog.query_arrow(
        "SELECT * FROM backup_sets WHERE pool = $pool AND ($job IS NULL OR job_name = $job)",
        {"pool": pool, "job": job},
    ).to_pylist()
    plan.records = {r["set_id"]: row_to_record(BackupSetRecord, r) for r in set_rows}
    groups: dict[tuple[str, str], tuple[str, list[SetPoint]]] = {}
    for row in rows:
        vm_id = row["vm_id"] or NO_VM
        good = row["vm_status"] == "ok" and row["set_status"] != "failed"
        _name, points = groups.setdefault((row["job_name"], vm_id), (row["vm_name"] or vm_id, []))
        points.append(SetPoint(row["set_id"], row["started_at"], good))
    verdicts: dict[str, list[Verdict]] = {}
    retentions: dict[str, JobRetention] = {}
    for (job_name, vm_id), (vm_name, points) in sorted(groups.items()):
        retention = retentions.setdefault(job_name, retention_of(job_name))
        if retention.policy is None:
            # No retention anywhere: every set of the job stays, and nothing is shown as removed.
            group_verdicts = [
                Verdict(p, True, ("no retention policy",))
                for p in sorted(points, key=lambda p: p.time, reverse=True)
            ]
        else:
            group_verdicts = apply_policy(points, retention.policy, retention.timezone, now)
        verdicts[f"{job_name}/{vm_id}"] = group_verdicts
        plan.vms.append(VmPlan(job_name, vm_id, vm_name, retention, tuple(group_verdicts)))
    plan.unmanaged_jobs = sorted(name for name, r in retentions.items() if r.policy is None)
    plan.sets = plan_sets(verdicts)
    return plan


@dataclass(frozen=True)
class DeletionOutcome:
    set_id: str
    deleted: bool
    message: str  # one line: what happened, or why the set was kept


@dataclass
class DeletionReport:
    outcomes: list[DeletionOutcome] = field(default_factory=list)
    released_media: list[str] = field(default_factory=list)  # tape/optical media free for reuse
    frees_by_gc: bool = False  # a dedup pool: `bingobackup gc` frees the chunks

    @property
    def deleted(self) -> list[str]:
        return [o.set_id for o in self.outcomes if o.deleted]

    @property
    def refused(self) -> list[DeletionOutcome]:
        return [o for o in self.outcomes if not o.deleted]


def expired_sets(catalog: Catalog, pool: str) -> set[str]:
    rows = catalog.query_arrow("SELECT set_id FROM set_deletions WHERE pool = $pool", {"pool": pool})
    return {row["set_id"] for row in rows.to_pylist()}


def delete_sets(
    pool: Pool,
    writer: CatalogWriter,
    records: Iterable[BackupSetRecord],
    *,
    now: datetime,
    reason: str,
    deleted_by: str,
    rule: str = "",
) -> DeletionReport:
    """Deletes each set from `pool` and then writes its tombstone; a set still under Object
    Lock is kept and reported (the others go on). Media pools expire the set instead."""
    report = DeletionReport(frees_by_gc=pool.config.kind == "dedup" and not pool.store.keeps_every_blob)
    for record in records:
        try:
            deleted = delete_set_from_pool(pool, record.set_id, now)
        except SetLockedError as error:
            report.outcomes.append(DeletionOutcome(record.set_id, False, str(error)))
            continue
        crash_point("delete.before-tombstone")
        writer.write_set_deletion(
            SetDeletionRecord(
                set_id=record.set_id,
                job_name=record.job_name,
                started_at=record.started_at,
                reason=reason,
                rule=rule,
                deleted_by=deleted_by,
                data_removed=deleted.data_removed,
                logical_bytes=record.logical_bytes,
                bytes_stored=record.bytes_stored,
            )
        )
        crash_point("delete.after-tombstone")
        what = (
            "deleted"
            if deleted.data_removed
            else "expired (its data stays on the media until they are reused)"
        )
        report.outcomes.append(DeletionOutcome(record.set_id, True, f"backup set {record.set_id} {what}"))
    return report


def note_released_media(pool: Pool, catalog: Catalog, pool_name: str, report: DeletionReport) -> None:
    """Adds to `report` the cartridges or discs of a media pool every set of which is expired
    (`catalog` refreshed after the deletions)."""
    report.released_media = released_media(pool, expired_sets(catalog, pool_name))


class SetsToDelete(NamedTuple):
    records: list[BackupSetRecord]
    already_deleted: list[str]


def sets_to_delete(catalog: Catalog, pool: str, set_ids: Sequence[str]) -> SetsToDelete:
    """The committed sets `set_ids` of `pool`, and those of them already deleted (a deletion
    run again after it was killed past its tombstone has nothing left to do for them); an
    unknown one is refused naming it, before anything is deleted."""
    wanted = list(dict.fromkeys(set_ids))
    rows = catalog.query_arrow(
        "SELECT set_id FROM backup_sets WHERE pool = $pool AND list_contains($ids, set_id)",
        {"pool": pool, "ids": wanted},
    ).to_pylist()
    present = {row["set_id"] for row in rows}
    missing = [s for s in wanted if s not in present]
    deleted = expired_sets(catalog, pool) & set(missing) if missing else set()
    unknown = [s for s in missing if s not in deleted]
    if unknown:
        raise BingoBackupError(
            f"pool {pool} holds no backup set {', '.join(unknown)}; nothing was deleted. "
            f"List its sets with `bingobackup sets list --pool {pool}`"
        )
    records = [catalog.backup_set(s, pool) for s in wanted if s in present]
    return SetsToDelete(records, [s for s in wanted if s in deleted])


def retention_lookup(
    jobs: Mapping[str, JobRetention], default: RetentionPolicy | None
) -> Callable[[str], JobRetention]:
    """`retention_of` for `plan_prune`: a job's own retention, else the pool's default (UTC
    buckets for a job no longer defined), else none."""

    def retention_of(job_name: str) -> JobRetention:
        known = jobs.get(job_name)
        if known is not None and known.policy is not None:
            return known
        if default is not None:
            return JobRetention(default, known.timezone if known else "UTC", "pool default")
        return JobRetention(None, known.timezone if known else "UTC", "none")

    return retention_of


def plan_rows(plan: PrunePlan) -> list[dict[str, str]]:
    """The prune simulator's table: per job and VM, every set newest first, what happens to
    it and the rules that keep it (times in the job's time zone)."""
    from zoneinfo import ZoneInfo

    rows = []
    for vm in plan.vms:
        zone = ZoneInfo(vm.retention.timezone)
        for verdict in vm.verdicts:
            set_plan = plan.sets[verdict.set_id]
            if verdict.keep:
                action = "keep"
            elif set_plan.keep:
                action = "keep (another VM)"  # this VM lets it go, a VM sharing the set does not
            else:
                action = "remove"
            rows.append(
                {
                    "job": vm.job_name,
                    "vm": vm.vm_name,
                    "set": verdict.set_id,
                    "started": f"{verdict.point.time.astimezone(zone):%Y-%m-%d %H:%M %Z}",
                    "backup": "good" if verdict.point.good else "failed",
                    "action": action,
                    "why": ", ".join(verdict.reasons),
                }
            )
    return rows


def summary_markdown(plan: PrunePlan, report: DeletionReport | None, dry_run: bool) -> str:
    """The prune run's summary (the flow's artifact): what was (or would be) removed, per VM."""
    removed = plan.to_remove
    head = (
        "Dry run: nothing was deleted."
        if dry_run
        else f"{len(report.deleted) if report else 0} set(s) deleted."
    )
    lines = [
        f"# Prune of pool {plan.pool}",
        "",
        f"{head} {len(plan.sets) - len(removed)} set(s) kept, {len(removed)} to remove.",
        "",
    ]
    if plan.unmanaged_jobs:
        lines += [f"Jobs without retention (every set kept): {', '.join(plan.unmanaged_jobs)}", ""]
    if report is not None:
        lines += [f"- {o.message}" for o in report.refused]
        if report.released_media:
            lines.append(
                f"- media every set of which is expired, free for reuse: {', '.join(report.released_media)}"
            )
        if report.frees_by_gc and report.deleted:
            lines.append(
                f"- the chunks only deleted sets used are freed by `bingobackup gc --pool {plan.pool}`"
            )
        lines.append("")
    rows = plan_rows(plan)
    if rows:
        columns = list(rows[0])
        lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(row[c].replace("|", "\\|") for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"
