"""`bingobackup server start|status|stop`: the local Prefect server (UI at its URL)."""

from __future__ import annotations

import typer

from bingobackup.cli import prefect_server
from bingobackup.cli.common import console

app = typer.Typer(help="The local Prefect server that holds jobs, registrations and run history.")


@app.command()
def start() -> None:
    """Start the local Prefect server in the background (reused by later commands)."""
    info = prefect_server.ensure_server()
    console.print(f"Prefect server ready: API {info.url}  UI {info.ui_url}")


@app.command()
def status() -> None:
    """Say which Prefect server commands use, and whether it answers."""
    info = prefect_server.status()
    if info is None:
        console.print("No local Prefect server is running; the next command that needs one starts it.")
        raise typer.Exit(1)
    owner = "local, started by bingobackup" if info.pid else "PREFECT_API_URL"
    console.print(f"Prefect server ({owner}): API {info.url}  UI {info.ui_url}")


@app.command()
def stop() -> None:
    """Stop the local Prefect server (its database stays under BINGOBACKUP_HOME)."""
    if prefect_server.stop_server():
        console.print("Local Prefect server stopped.")
    else:
        console.print("No local Prefect server was running.")
