"""`bingobackup pool …`: create and list pools (存储池)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from bingobackup.cli.common import authorize_command, console, registry
from bingobackup.cli.pools_index import remember

app = typer.Typer(help="Pools: where backup sets are stored.", no_args_is_help=True)


def parse_chunk_size(text: str) -> int:
    from bingobackup.specs.job import parse_size

    try:
        return parse_size(text, "--chunk-size")
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--chunk-size") from None


@app.command()
def create(
    name: str = typer.Option(..., help="Pool name used in jobs (lowercase)"),
    kind: str = typer.Option("dedup", help="standard | dedup (object, tape, lanfree, optical: later)"),
    path: Path = typer.Option(..., help="Directory of the pool (created; must not hold a pool yet)"),
    chunk_size: str = typer.Option("4MiB", help="Fixed chunk size, a power of two from 64KiB to 64MiB"),
    encrypt: bool = typer.Option(False, "--encrypt/--no-encrypt", help="AES-256-GCM with a passphrase"),
    passphrase: str = typer.Option(
        None,
        help="Passphrase of an encrypted pool (or BINGOBACKUP_POOL_PASSPHRASE)",
        envvar="BINGOBACKUP_POOL_PASSPHRASE",
    ),
    compression: str = typer.Option("fast", help="Default compression: fast (zstd) | none"),
    group: list[str] = typer.Option([], "--group", help="User group authorized to use it (repeatable)"),
) -> None:
    """Create a pool on disk and register it (admin)."""
    from bingobackup.resources.pools import create_registered_pool

    with registry() as (store, user):
        pool = create_registered_pool(
            store,
            user,
            name=name,
            kind=kind,  # type: ignore[arg-type]
            location=path,
            chunk_size=parse_chunk_size(chunk_size),
            encrypted=encrypt,
            passphrase=passphrase,
            compression=compression,
            groups=group,
        )
    remember(pool.name, pool.location)
    console.print(
        f"Pool [bold]{pool.name}[/] ({pool.kind}{', encrypted' if pool.passphrase else ''}) created at {pool.location}"
    )


@app.command("list")
def list_() -> None:
    """Pools you may use."""
    from bingobackup.resources.pools import list_pools

    with registry() as (store, user):
        pools = list_pools(store, user)
    table = Table("name", "kind", "location", "encrypted", "groups")
    for p in pools:
        remember(p.name, p.location)
        table.add_row(p.name, p.kind, p.location, "yes" if p.passphrase else "no", ", ".join(p.groups))
    console.print(table)


app.command("authorize")(authorize_command("pool", "Pool"))
