"""`bingobackup gc`: garbage collection and repack of a pool, from the command line."""

from __future__ import annotations

import typer
from rich.table import Table

from bingobackup.cli.common import console, registry


def gc(
    pool: str = typer.Option(..., "--pool", help="Pool name"),
    repack_threshold: int = typer.Option(
        50, "--repack-threshold", min=0, max=100, help="Rewrite dedup packs less than this % live (0: never)"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only report what a run would free"),
) -> None:
    """Free the chunks no backup set of a pool uses, and repack sparse dedup packs. Safe while
    backups, restores and set deletions run: what they may still need is left for the next run."""
    from bingobackup.lifecycle.gc import collect_garbage, report_rows
    from bingobackup.resources.pools import open_registered_pool, pool_for

    with registry() as (store, user):
        registration = pool_for(store, user, pool)
    report = collect_garbage(
        open_registered_pool(registration),
        repack=repack_threshold > 0,
        repack_threshold=repack_threshold / 100,
        dry_run=dry_run,
    )
    console.print(f"Garbage collection of pool [bold]{registration.name}[/]")
    if dry_run:
        console.print("Dry run: nothing changed")
    table = Table("figure", "value")
    for figure, value in report_rows(report):
        table.add_row(figure, value)
    console.print(table)
