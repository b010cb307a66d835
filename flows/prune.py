"""The `bingobackup-prune` flow: apply the retention policies of a pool's (or one job's) sets.

Deployed by the pool's maintenance schedule (entrypoint `flows.prune.prune`), run by
`bingobackup prune --yes`. Its summary artifact is the prune simulator's table.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from catalog.lifecycle import summary_markdown
from tasks.prune import delete_sets_task, plan_prune_task, resolve_prune_task

PRUNE_FLOW_NAME = "bingobackup-prune"


@flow(name=PRUNE_FLOW_NAME, log_prints=False)
def prune(pool: str | None = None, job: str | None = None, dry_run: bool = False) -> dict[str, Any]:
    """Prune the backup sets of `pool` (every job writing there) or of one `job`: sets no
    retention rule keeps are deleted (their tombstones hide them from the catalog).
    `dry_run` only reports what would go."""
    logger = get_run_logger()
    target = resolve_prune_task(pool, job)
    plan = plan_prune_task(target)
    report = None
    if not dry_run and plan.to_remove:
        report = delete_sets_task(target, plan, "prune flow")
        for refused in report.refused:
            logger.warning("%s", refused.message)
    create_markdown_artifact(
        markdown=summary_markdown(plan, report, dry_run),
        key=f"prune-{plan.pool}",
        description=f"Prune of pool {plan.pool}",
    )
    deleted = report.deleted if report else []
    logger.info(
        "pool %s: %d set(s) kept, %d %s",
        plan.pool,
        len(plan.sets) - len(plan.to_remove),
        len(plan.to_remove),
        "would be removed (dry run)" if dry_run else f"to remove, {len(deleted)} deleted",
    )
    return {
        "pool": plan.pool,
        "dry_run": dry_run,
        "to_remove": plan.to_remove,
        "deleted": deleted,
        "refused": [o.message for o in report.refused] if report else [],
        "released_media": report.released_media if report else [],
    }
