"""The `bingobackup` Typer application: one module per command group, each importing what its
commands need only when they run, so that commands which need neither Prefect nor the cloud
answer quickly. `bingobackup.cli.main` runs it."""

from __future__ import annotations

import os

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
