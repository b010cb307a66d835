"""`bingobackup backup run SPEC.yaml`: run a backup job spec now, as a Prefect flow."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import typer
from rich.table import Table

from bingobackup.cli.common import (
    acting_user_name,
    byte_progress,
    collector_paused_for_imports,
    console,
    prefect_api,
    registry,
)

if TYPE_CHECKING:
    from bingobackup.resources.store import InMemoryRegistryStore

app = typer.Typer(help="Run backup jobs.", no_args_is_help=True)


def outcome_table(rows: list[dict[str, object]], title: str) -> Table:
    table = Table(*rows[0].keys(), title=title) if rows else Table(title=title)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    return table


def run_backup(spec_path: Path, *, quiet: bool = False) -> tuple[str, list[dict[str, object]], bool]:
    """Run the backup flow on a spec file; (set id, per-VM rows, every VM ok)."""
    with collector_paused_for_imports():
        from bingobackup.specs.job import load_job_spec

        spec = load_job_spec(spec_path)  # a malformed spec is refused before any server starts
    with prefect_api() as server:
        with collector_paused_for_imports():
            # The run's own checks, before it starts: an unknown cloud, host, pool or VM is one
            # line here, not a failed run (the run checks again: things change).
            from bingobackup.backup.job import check_backup_job

            with registry(read_only=True) as (store, user):
                checked = check_backup_job(store, user, spec)
            # The run resolves the job again from the same read, and its pool opens with
            # the key unlocked meanwhile (scrypt) while the run is being created.
            from bingobackup.resources.pools import unlock_in_background
            from tasks.blocks import snapshot_handed_to_run

            unlock_in_background(checked.pool_registration)
            from flows.backup import run_backup_now, summary_rows_from_state

        console.print(f"Backup job [bold]{spec.name}[/]: watch it at {server.ui_url}/runs")
        with (
            snapshot_handed_to_run(cast("InMemoryRegistryStore", store)),
            byte_progress(f"{spec.name}: reading disks", quiet=quiet),
        ):
            state = run_backup_now(spec, acting_user_name())
        set_id, rows = summary_rows_from_state(state)
    return set_id, rows, state.is_completed()


@app.command()
def run(spec: Path = typer.Argument(..., help="Backup job spec (YAML)")) -> None:
    """Back up now; exit 0 only when every selected VM was backed up; prints the backup set id."""
    set_id, rows, ok = run_backup(spec)
    console.print(outcome_table(rows, f"Backup set {set_id or '(none)'}"))
    if set_id:
        console.print(f"backup set: {set_id}")
    if not ok:
        console.print("[red]Some VMs were not backed up: see the status column and the run's logs.[/]")
        raise typer.Exit(1)
