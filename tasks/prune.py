"""The prune's steps as Prefect tasks: thin wrappers around `catalog.lifecycle`.

resolve (the pool, and each job's retention from its deployment) → plan → delete.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

from prefect import task
from prefect.cache_policies import NONE
from prefect.client.orchestration import get_client
from pydantic import ValidationError

from bingobackup.errors import BingoBackupError
from bingobackup.resources.models import PoolRegistration
from bingobackup.resources.pools import find_pool, open_registered_pool, pool_catalog_root
from bingobackup.specs.job import BackupJobSpec
from catalog import Catalog, CatalogWriter
from catalog.lifecycle import (
    DeletionReport,
    JobRetention,
    PrunePlan,
    delete_sets,
    note_released_media,
    plan_prune,
    retention_lookup,
)
from tasks.blocks import PrefectRegistryStore
from tasks.paging import read_all


@dataclass(frozen=True)
class PruneTarget:
    """One pool to prune, the job whose sets are pruned (None: every job), and the retention
    of each backup job that writes to the pool."""

    registration: PoolRegistration
    job: str | None
    jobs: dict[str, JobRetention]


def backup_jobs() -> dict[str, BackupJobSpec]:
    """Every backup job stored as a deployment, by name (restore jobs and others left out)."""
    jobs: dict[str, BackupJobSpec] = {}
    with get_client(sync_client=True) as client:
        for deployment in read_all(lambda offset, limit: client.read_deployments(limit=limit, offset=offset)):
            spec = (deployment.parameters or {}).get("spec")
            if isinstance(spec, dict) and "content" in spec:
                with contextlib.suppress(ValidationError, ValueError):  # not ours to judge here
                    parsed = BackupJobSpec.model_validate(spec)
                    jobs[parsed.name] = parsed
    return jobs


def resolve_prune_target(pool: str | None, job: str | None) -> PruneTarget:
    """What `--pool NAME` or `--job NAME` prunes: one clear line when neither or an unknown one."""
    if (pool is None) == (job is None):
        raise BingoBackupError("prune needs exactly one of --pool NAME or --job NAME")
    specs = backup_jobs()
    if job is not None:
        if job not in specs:
            known = ", ".join(sorted(specs)) or "none"
            raise BingoBackupError(
                f"no backup job named {job!r} (backup jobs: {known}); see `bingobackup job list`"
            )
        pool = specs[job].pool
    assert pool is not None
    registration = find_pool(PrefectRegistryStore(), pool)
    jobs = {
        name: JobRetention(spec.retention, spec.schedule.timezone)
        for name, spec in specs.items()
        if spec.pool == registration.name
    }
    return PruneTarget(registration, job, jobs)


def open_pool_catalog(registration: PoolRegistration) -> Catalog:
    root, filesystem = pool_catalog_root(registration)
    return Catalog.open(root, pool=registration.name, filesystem=filesystem)


def plan_for(target: PruneTarget, now: datetime) -> PrunePlan:
    with open_pool_catalog(target.registration) as catalog:
        lookup = retention_lookup(target.jobs, target.registration.retention)
        return plan_prune(catalog, target.registration.name, lookup, now, job=target.job)


def apply_plan(target: PruneTarget, plan: PrunePlan, deleted_by: str, now: datetime) -> DeletionReport:
    """Deletes the sets the plan removes (each with its tombstone), then names the media a
    media pool may reuse."""
    registration = target.registration
    pool = open_registered_pool(registration)
    writer = CatalogWriter(*pool_catalog_root(registration))
    rules = {vm.job_name: vm.retention.policy.describe() for vm in plan.vms if vm.retention.policy}
    report = DeletionReport()
    for set_id in plan.to_remove:
        record = plan.records[set_id]
        one = delete_sets(
            pool,
            writer,
            [record],
            now=now,
            reason="retention",
            deleted_by=deleted_by,
            rule=rules.get(record.job_name, ""),
        )
        report.outcomes += one.outcomes
        report.frees_by_gc = one.frees_by_gc
    with open_pool_catalog(registration) as catalog:
        note_released_media(pool, catalog, registration.name, report)
    return report


@task(name="resolve prune", cache_policy=NONE)
def resolve_prune_task(pool: str | None, job: str | None) -> PruneTarget:
    return resolve_prune_target(pool, job)


@task(name="plan prune", task_run_name="plan prune of {target.registration.name}", cache_policy=NONE)
def plan_prune_task(target: PruneTarget) -> PrunePlan:
    return plan_for(target, datetime.now(UTC))


@task(name="delete sets", task_run_name="delete {plan.pool}'s expired sets", cache_policy=NONE)
def delete_sets_task(target: PruneTarget, plan: PrunePlan, deleted_by: str) -> DeletionReport:
    return apply_plan(target, plan, deleted_by, datetime.now(UTC))
