"""`bingobackup prune`, `bingobackup sets delete`, `bingobackup pool set-retention`.

Prune shows, per job and VM, every backup set with keep/remove and the rule that keeps it
(the prune simulator); it deletes only with --yes, as an admin, by running the
`bingobackup-prune` flow so the run shows in the Prefect UI. docs/lifecycle.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from bingobackup.cli.common import console, prefect_api, registry

if TYPE_CHECKING:
    from catalog.lifecycle import DeletionReport, PrunePlan

_ACTION_STYLE = {"keep": "green", "remove": "bold red", "keep (another VM)": "yellow"}


def _plan_table(plan: PrunePlan) -> Table:
    from catalog.lifecycle import plan_rows

    rows = plan_rows(plan)
    table = Table(
        "job", "vm", "set", "started", "backup", "action", "why", title=f"Prune of pool {plan.pool}"
    )
    previous = None
    for row in rows:
        group = (row["job"], row["vm"])
        if previous is not None and group != previous:
            table.add_section()
        previous = group
        style = _ACTION_STYLE.get(row["action"], "")
        table.add_row(
            *(escape(row[c]) for c in ("job", "vm", "set", "started", "backup")),
            f"[{style}]{row['action']}[/]",
            escape(row["why"]),
        )
    return table


def _print_report(report: DeletionReport, pool: str) -> None:
    for outcome in report.outcomes:
        colour = "green" if outcome.deleted else "red"
        console.print(f"[{colour}]{escape(outcome.message)}[/]", highlight=False, soft_wrap=True)
    if report.released_media:
        console.print(
            f"Every set on {', '.join(report.released_media)} is expired: these media may be erased and reused.",
            highlight=False,
        )
    if report.frees_by_gc and report.deleted:
        console.print(
            f"The chunks only the deleted sets used stay in the pool until `bingobackup gc --pool {pool}` frees them.",
            highlight=False,
        )


def _acting(yes: bool, dry_run: bool) -> bool:
    if yes and dry_run:
        raise typer.BadParameter("give --dry-run or --yes, not both", param_hint="--yes")
    return yes


def prune(
    job: str | None = typer.Option(None, "--job", help="Prune the sets of this backup job"),
    pool: str | None = typer.Option(None, "--pool", help="Prune every job's sets in this pool"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only show what would be removed (the default)"),
    yes: bool = typer.Option(False, "--yes", help="Delete the sets no rule keeps (admin)"),
) -> None:
    """Show per VM every backup set with keep/remove and the rule that keeps it; --yes deletes."""
    from bingobackup.resources.access import require_admin
    from tasks.prune import plan_for, resolve_prune_target

    acting = _acting(yes, dry_run)
    with registry() as (_, user):
        if acting:
            require_admin(user, "prune backup sets")
        target = resolve_prune_target(pool, job)
        plan = plan_for(target, datetime.now(UTC))
    console.print(_plan_table(plan))
    if plan.unmanaged_jobs:
        console.print(f"No retention (every set kept): {', '.join(plan.unmanaged_jobs)}", highlight=False)
    removing = plan.to_remove
    console.print(
        f"{len(plan.sets) - len(removing)} set(s) kept, {len(removing)} to remove.", highlight=False
    )
    if not acting:
        if removing:
            console.print(
                "Dry run: nothing was deleted. Run again with --yes to delete them.", highlight=False
            )
        return
    if not removing:
        return
    with prefect_api() as server:
        from flows.prune import prune as prune_flow

        console.print(f"Pruning: watch it at {server.ui_url}/runs", highlight=False)
        result = prune_flow(pool=None if job else target.registration.name, job=job, dry_run=False)
    for message in result["refused"]:
        console.print(f"[red]{escape(message)}[/]", highlight=False, soft_wrap=True)
    console.print(
        f"{len(result['deleted'])} set(s) deleted: {', '.join(result['deleted']) or 'none'}", highlight=False
    )
    if result["released_media"]:
        console.print(
            f"Every set on {', '.join(result['released_media'])} is expired: these media may be erased and reused.",
            highlight=False,
        )
    if result["deleted"] and target.registration.on_pool_format == "dedup":
        console.print(
            f"The chunks only the deleted sets used stay in the pool until `bingobackup gc --pool "
            f"{target.registration.name}` frees them.",
            highlight=False,
        )
    if result["refused"]:
        raise typer.Exit(1)


def delete_sets(
    set_ids: list[str] = typer.Argument(..., help="Backup set id(s)"),
    pool: str = typer.Option(..., "--pool", help="The pool holding them"),
    yes: bool = typer.Option(False, "--yes", help="Delete (without it: only show what would go)"),
) -> None:
    """Delete chosen backup sets from a pool (admin); the catalog stops listing them."""
    from bingobackup.resources.access import require_admin
    from bingobackup.resources.pools import open_registered_pool, pool_catalog_root, pool_for
    from catalog import CatalogWriter
    from catalog.lifecycle import delete_sets as delete_from_pool
    from catalog.lifecycle import note_released_media, sets_to_delete
    from tasks.prune import open_pool_catalog

    with registry() as (store, user):
        require_admin(user, "delete backup sets")
        registration = pool_for(store, user, pool)
    with open_pool_catalog(registration) as catalog:
        records, already_deleted = sets_to_delete(catalog, registration.name, set_ids)
    if already_deleted:
        console.print(
            f"Already deleted from pool {pool}: {', '.join(already_deleted)} (nothing to do for them).",
            highlight=False,
        )
    if not records:
        return
    table = Table("set", "job", "started", "status", "VMs", title=f"Backup sets to delete from pool {pool}")
    for record in records:
        table.add_row(
            record.set_id,
            record.job_name,
            f"{record.started_at:%Y-%m-%d %H:%M %Z}",
            record.status,
            str(record.vm_count),
        )
    console.print(table)
    if not yes:
        console.print("Nothing was deleted. Run again with --yes to delete them.", highlight=False)
        return
    opened = open_registered_pool(registration)
    report = delete_from_pool(
        opened,
        CatalogWriter(*pool_catalog_root(registration)),
        records,
        now=datetime.now(UTC),
        reason="manual",
        deleted_by=user.name,
    )
    with open_pool_catalog(registration) as catalog:
        note_released_media(opened, catalog, registration.name, report)
    _print_report(report, registration.name)
    if report.refused:
        raise typer.Exit(1)


def set_retention(
    name: str = typer.Argument(..., help="Pool name"),
    keep_last: int = typer.Option(None, help="the newest N sets of each VM"),
    keep_hourly: int = typer.Option(None, help="the newest set of each of the last N hours with sets"),
    keep_daily: int = typer.Option(None, help="… of the last N days"),
    keep_weekly: int = typer.Option(None, help="… of the last N ISO weeks"),
    keep_monthly: int = typer.Option(None, help="… of the last N months"),
    keep_yearly: int = typer.Option(None, help="… of the last N years"),
    keep_within: str = typer.Option(
        None, help="every set within this long of the newest: 30d, 2w, 6m, 1y, 12h"
    ),
    keep_min: int = typer.Option(1, help="never fewer than the newest N good sets per VM"),
    keep_failed_days: int = typer.Option(
        None, help="failed/partial backups go after this many days (default 7)"
    ),
    clear: bool = typer.Option(False, "--clear", help="Remove the pool's default retention"),
) -> None:
    """Set the default retention of a pool: jobs writing there without their own use it (admin)."""
    from bingobackup.resources.pools import set_pool_retention
    from bingobackup.specs.retention import RetentionPolicy

    fields = {
        "keep_last": keep_last,
        "keep_hourly": keep_hourly,
        "keep_daily": keep_daily,
        "keep_weekly": keep_weekly,
        "keep_monthly": keep_monthly,
        "keep_yearly": keep_yearly,
        "keep_within": keep_within,
        "keep_min": keep_min,
        "keep_failed_days": keep_failed_days,
    }
    policy = (
        None if clear else RetentionPolicy.model_validate({k: v for k, v in fields.items() if v is not None})
    )
    if policy is not None and not policy.has_keep_rule:
        raise typer.BadParameter("give at least one --keep-* rule (or --clear)", param_hint="--keep-daily")
    with registry() as (store, user):
        set_pool_retention(store, user, name, policy)
    console.print(
        f"Pool [bold]{escape(name)}[/]: default retention {escape(policy.describe()) if policy else 'none (jobs without one keep every set)'}"
    )


def register(app: typer.Typer, *, sets: typer.Typer, pools: typer.Typer) -> None:
    """`prune`, `sets delete` and `pool set-retention` on the main command (one line in main.py)."""
    app.command("prune")(prune)
    sets.command("delete")(delete_sets)
    pools.command("set-retention")(set_retention)
