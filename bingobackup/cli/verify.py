"""`bingobackup verify`: read back a pool's backup sets and report every damaged chunk.

It runs in the command's own process (like `export-disk`, it reads the pool directly; a
registered object pool's keys come from the registry). Scheduled verifies run the
`bingobackup-verify` flow (flows/verify.py), which does the same.
"""

from __future__ import annotations

import typer
from rich.table import Table

from bingobackup.cli.common import byte_bar, console, err_console
from bingobackup.cli.pools_index import pool_ref


def _table(title: str, rows: list[dict[str, str]]) -> Table:
    table = Table(title=title)
    for column in rows[0] if rows else ():
        table.add_column(column, no_wrap=column in ("set", "chunk", "offset"))
    for row in rows:
        table.add_row(*row.values())
    return table


def verify(
    pool: str = typer.Option(..., "--pool", help="Pool name or directory"),
    set_id: str | None = typer.Option(None, "--set", help="Verify only this backup set"),
    vm: str | None = typer.Option(None, "--vm", help="Verify only the sets holding this VM (name or id)"),
    job: str | None = typer.Option(None, "--job", help="Verify only the sets this job made"),
    sample: str = typer.Option(
        "100%", "--sample", help="Read a random share of the distinct chunks, e.g. 10% (seeded, reported)"
    ),
    since_days: int | None = typer.Option(
        None, "--since-days", min=0, help="Skip sets fully verified without damage in the last N days"
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the --sample draw (to repeat one)"),
    passphrase: str | None = typer.Option(
        None, envvar="BINGOBACKUP_POOL_PASSPHRASE", help="Passphrase of an encrypted pool"
    ),
) -> None:
    """Read back every chunk the pool's backup sets reference (or a random sample), checking
    each one's authentication tag and digest, each disk's sealed manifest and the catalog;
    report damaged chunks by VM, disk, offset and set. Exit code 1 when anything is damaged."""
    from tasks.verify import VerifySelection, parse_sample, verify_pool

    selection = VerifySelection(
        set_id=set_id, vm=vm, job=job, sample_percent=parse_sample(sample), since_days=since_days, seed=seed
    ).check()
    ref = pool_ref(pool)
    opened = ref.open_for_reading(passphrase)
    name, root, filesystem = ref.catalog_root()
    with byte_bar(f"verify {name}", on=err_console) as progress:
        report = verify_pool(opened, (root, filesystem), selection, progress=progress)
    if report.sets:
        console.print(_table("backup sets verified", report.summary_rows()))
    console.print(report.headline(), highlight=False, soft_wrap=True)
    if report.ok:
        return
    console.print(_table("damaged", report.damage_rows()))
    console.print(f"[bold red]Damaged.[/] What to do: {report.advice()}.", highlight=False, soft_wrap=True)
    raise typer.Exit(1)
