"""`bingobackup server start|status|stop`: the local Prefect server (UI at its URL)."""

from __future__ import annotations

import typer

from bingobackup.cli import prefect_server
from bingobackup.cli.common import console
from bingobackup.errors import BingoBackupError

app = typer.Typer(help="The local Prefect server that holds jobs, registrations and run history.")


@app.command()
def start(
    host: str = typer.Option(
        prefect_server.LOOPBACK,
        help="Address to listen on; beyond loopback (e.g. 0.0.0.0 for the backup hosts' workers) "
        "the API requires a basic-auth string",
    ),
    auth: bool | None = typer.Option(
        None,
        "--auth/--no-auth",
        help="Require Prefect's basic-auth string (PREFECT_SERVER_API_AUTH_STRING, else a random one "
        "kept in BINGOBACKUP_HOME/prefect-api-auth-string); on by default beyond loopback, where "
        "--no-auth is refused",
    ),
    database: str | None = typer.Option(
        None,
        "--database",
        help="Keep the server's data in PostgreSQL: postgresql+asyncpg://USER:PASSWORD@HOST:5432/DB "
        "(remembered for later starts; 'local' goes back to the SQLite file under BINGOBACKUP_HOME). "
        "Default: the database of the previous start",
    ),
) -> None:
    """Start the local Prefect server in the background (reused by later commands)."""
    running = prefect_server.status()
    wanted_auth = not prefect_server.is_loopback(host) if auth is None else auth
    asked = (host, wanted_auth)
    if database is not None:
        prefect_server.checked_database_url(database)
    if running and running.pid is not None and (running.host, running.auth_string is not None) != asked:
        protection = "with" if running.auth_string is not None else "without"
        raise BingoBackupError(
            f"The local Prefect server already runs on {running.host} {protection} an auth string. "
            "Stop it with `bingobackup server stop`, then start it again with the options you want."
        )
    if running and running.pid is not None and database is not None:
        wanted = prefect_server.database_label(
            None if database == prefect_server.LOCAL_DATABASE else database
        )
        if running.database != wanted:
            raise BingoBackupError(
                f"The local Prefect server already runs on the database {running.database}. Stop it with "
                "`bingobackup server stop`, then start it again with --database."
            )
    if database is not None:
        prefect_server.remember_database(database)
    info = prefect_server.ensure_server(host=host, auth=auth)
    console.print(f"Prefect server ready: API {info.url}  UI {info.ui_url}", highlight=False)
    if info.pid is not None:
        console.print(f"  its data: {info.database}", highlight=False)
    if info.pid is not None and info.auth_string is not None:
        console.print(
            f"The API requires its auth string, kept in {prefect_server.auth_string_file()} (readable "
            "only by you): this home's commands send it; give it to remote workers as "
            "PREFECT_API_AUTH_STRING, and type it in the UI's login page."
        )


@app.command()
def status() -> None:
    """Say which Prefect server commands use, and whether it answers."""
    info = prefect_server.status()
    if info is None:
        console.print("No local Prefect server is running; the next command that needs one starts it.")
        raise typer.Exit(1)
    owner = "local, started by bingobackup" if info.pid else "PREFECT_API_URL"
    console.print(f"Prefect server ({owner}): API {info.url}  UI {info.ui_url}")
    if info.pid:
        protection = "requires its auth string" if info.auth_string is not None else "has no auth string"
        console.print(f"  listens on {info.host}; the API {protection}")
        console.print(f"  its data: {info.database}", highlight=False)


@app.command()
def stop() -> None:
    """Stop the local Prefect server (its database stays under BINGOBACKUP_HOME)."""
    if prefect_server.stop_server():
        console.print("Local Prefect server stopped.")
    else:
        console.print("No local Prefect server was running.")
