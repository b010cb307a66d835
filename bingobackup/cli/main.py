"""The `bingobackup` command: one module per command group, imported lazily so that
commands which need neither Prefect nor the cloud answer quickly."""

from __future__ import annotations

import gc as python_gc
import os
import sys

import typer

from bingobackup.cli import (
    backup,
    catalog,
    cloud,
    demo,
    gc,
    host,
    job,
    notify,
    pool,
    prune,
    resources,
    restore,
    server,
    sim,
    user,
    verify,
    worker,
)
from bingobackup.cli.common import err_console

app = typer.Typer(
    name="bingobackup",
    help="Backup and restore of BingoCloud virtual machines, orchestrated by Prefect.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(sim.app, name="sim")
app.add_typer(server.app, name="server")
app.add_typer(cloud.app, name="cloud")
app.add_typer(host.app, name="host")
app.add_typer(user.app, name="user")
app.add_typer(pool.app, name="pool")
app.add_typer(backup.app, name="backup")
app.add_typer(job.app, name="job")
app.add_typer(notify.app, name="notify")
app.add_typer(worker.app, name="worker")
app.add_typer(restore.app, name="restore")
app.add_typer(catalog.catalog_app, name="catalog")
app.add_typer(catalog.sets_app, name="sets")
app.command("export-disk")(catalog.export_disk)
app.command("verify")(verify.verify)
app.add_typer(resources.app, name="resources")
app.command("demo")(demo.demo)
app.command("gc")(gc.gc)
prune.register(app, sets=catalog.sets_app, pools=pool.app)


@app.callback()
def _global(
    user: str = typer.Option(
        None,
        "--user",
        help="Act as this bingobackup user (default: $BINGOBACKUP_USER; the built-in admin while no "
        "user is registered).",
    ),
) -> None:
    if user:
        os.environ["BINGOBACKUP_USER"] = user


def _is_operator_error(exc: BaseException) -> bool:
    from pydantic import ValidationError

    from bingobackup.errors import BingoBackupError

    return isinstance(exc, BingoBackupError | ValidationError | FileNotFoundError | PermissionError)


def main() -> None:
    # INFO lines belong in the run's log in the Prefect UI; the terminal shows progress and tables.
    from bingobackup.cli.handoff import hand_over_command
    from bingobackup.cli.prefect_server import LOGGING_ENVIRONMENT

    for name, value in LOGGING_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    # `backup run` on a host whose worker runs: forked from the worker's warm fork server,
    # which runs `run_here` (cli/handoff.py).
    hand_over_command(sys.argv[1:])
    run_here()


def run_here() -> None:
    """The command in sys.argv, in this process; errors an operator can fix are one line."""
    try:
        app()
    except Exception as exc:
        if os.environ.get("BINGOBACKUP_DEBUG") or not _is_operator_error(exc):
            raise
        from rich.markup import escape

        # soft_wrap: the message stays whole on one line (the terminal wraps it), so it can be
        # read, copied and searched for in a log without line breaks rich would insert.
        err_console.print(f"[bold red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    finally:
        # The interpreter's exit ends with a full garbage collection over every object left,
        # Prefect's and pydantic's million among them: 0.3-0.4 s after the command's last line
        # (docs/benchmarks.md, "End to end"). Frozen objects are left out of it; the process
        # ends anyway, and atexit handlers (Prefect sending its last events and logs) still run.
        python_gc.freeze()


if __name__ == "__main__":
    main()
