"""`bingobackup catalog query`, `bingobackup sets list`, `bingobackup export-disk`.

They read pools directly (no Prefect server needed): a pool is named by a path or by a name
this machine knows (see `pools_index`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import typer
from rich.table import Table

from bingobackup.cli.common import console
from bingobackup.cli.pools_index import known_pools, pool_location

catalog_app = typer.Typer(
    help="Query the backup history (Parquet catalog, DuckDB SQL).", no_args_is_help=True
)
sets_app = typer.Typer(help="Backup sets.", no_args_is_help=True)


def open_catalog(pools: list[str]):  # type: ignore[no-untyped-def]
    from catalog import Catalog

    names = pools or sorted(known_pools())
    if not names:
        from bingobackup.errors import BingoBackupError

        raise BingoBackupError("No pool known on this machine: pass --pool NAME_OR_DIR (repeatable).")
    return Catalog([pool_location(n) for n in names])


def _frame_table(frame, title: str = "") -> Table:  # type: ignore[no-untyped-def]
    table = Table(title=title or None)
    for column in frame.columns:
        # Ids are copied into other commands: never wrap them.
        table.add_column(str(column), no_wrap=str(column).endswith("_id"))
    for row in frame.itertuples(index=False):
        table.add_row(*("" if v is None else str(v) for v in row))
    return table


@catalog_app.command("query")
def query(
    sql: str,
    pool: list[str] = typer.Option([], "--pool", help="Pool name or directory (default: every known pool)"),
    output: str = typer.Option("table", "--format", help="table | csv | json"),
) -> None:
    """Run SQL over the views backup_sets, vm_backups, disk_backups, chunks, job_runs."""
    with open_catalog(pool) as cat:
        frame = cat.query(sql)
    if output == "csv":
        typer.echo(frame.to_csv(index=False), nl=False)
    elif output == "json":
        typer.echo(frame.to_json(orient="records", date_format="iso"))
    else:
        console.print(_frame_table(frame))


@sets_app.command("list")
def list_sets(
    vm: str = typer.Option(None, help="VM name or id"),
    job: str = typer.Option(None, help="Job name"),
    pool: list[str] = typer.Option([], "--pool", help="Pool name or directory (default: every known pool)"),
    since: str = typer.Option(None, help="ISO date/time, UTC"),
    until: str = typer.Option(None, help="ISO date/time, UTC"),
) -> None:
    """Backup sets, newest first, filtered by VM, job, pool and time."""
    from datetime import datetime

    with open_catalog(pool) as cat:
        frame = cat.list_sets(
            vm=vm,
            job=job,
            since=datetime.fromisoformat(since) if since else None,
            until=datetime.fromisoformat(until) if until else None,
        )
    columns = [
        c
        for c in (
            "pool",
            "set_id",
            "job_name",
            "status",
            "finished_at",
            "vm_count",
            "disk_count",
            "logical_bytes",
            "bytes_stored",
        )
        if c in frame.columns
    ]
    console.print(_frame_table(frame[columns], "backup sets"))


def export_disk(
    pool: str = typer.Option(..., help="Pool name or directory"),
    set_id: str = typer.Option(..., "--set", help="Backup set id"),
    volume: str = typer.Option(..., help="Volume id of the backed-up disk"),
    output: Path = typer.Option(..., help="Raw image to write (sparse)"),
    passphrase: str = typer.Option(
        None, envvar="BINGOBACKUP_POOL_PASSPHRASE", help="Passphrase of an encrypted pool"
    ),
    sha256: bool = typer.Option(False, "--sha256", help="Print the SHA-256 of the image written"),
) -> None:
    """Write a backed-up disk as a sparse raw image (every chunk verified as it is read)."""
    from bingobackup.mover.restore import restore_disk
    from bingobackup.pools import open_pool

    name, location = pool_location(pool)
    with open_catalog([location]) as cat:
        manifest = cat.disk_manifest(set_id, volume)
        owner = cat.query(
            "SELECT v.vm_name FROM disk_backups d JOIN vm_backups v USING (pool, set_id, vm_id) "
            "WHERE d.set_id = $set_id AND d.volume_id = $volume",
            {"set_id": set_id, "volume": volume},
        )
    vm_name = str(owner["vm_name"][0]) if len(owner) else "?"
    opened = open_pool(location, passphrase, name=name)
    result = restore_disk(opened, manifest, output, label=f"VM {vm_name} disk {volume} (set {set_id})")
    console.print(
        f"Wrote {output} ({manifest.size_bytes} bytes, {len(manifest.chunks)} chunks) in {result.seconds:.1f} s"
    )
    if sha256:
        console.print(f"sha256 {file_sha256(output)}")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()
