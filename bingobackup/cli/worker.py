"""`bingobackup worker start --host ID`: the agent's Prefect worker on a backup host.

It serves the host's work queue in the jobs' process work pool, so scheduled and started
runs of the jobs on that host execute here (each in its own process). It first checks that
this machine runs an OS on the backup-host list (/etc/os-release, architecture), since the
cloud may not have said which OS the VM runs. A host registered with a `--device-root`
other than `/` is a simulator's: its worker runs beside the simulator, not inside the VM,
so there is no VM OS to check here.
"""

from __future__ import annotations

import os
import socket
import sys

import typer

from bingobackup.cli.common import console, prefect_api, registry
from bingobackup.cli.prefect_server import client_environment

app = typer.Typer(help="The Prefect worker that runs jobs on a backup host.", no_args_is_help=True)


@app.command()
def start(
    host: str = typer.Option(..., "--host", help="Instance id of this backup host (its jobs' work queue)"),
    pool: str = typer.Option(
        None, "--pool", help="Work pool (default: BINGOBACKUP_WORK_POOL or 'bingobackup')"
    ),
) -> None:
    """Run the jobs of one backup host until stopped (Ctrl-C or SIGTERM)."""
    from bingobackup.resources.access import backup_host_for
    from bingobackup.resources.hosts import read_local_os

    with registry() as (store, user):
        registered = backup_host_for(store, user, host)
    if registered.device_root == "/":
        local_os = read_local_os()
        console.print(f"This machine runs {local_os}, a supported backup-host OS.")
    else:
        console.print(f"Simulated backup host (device root {registered.device_root}): OS check skipped.")
    with prefect_api() as server:
        from prefect.client.orchestration import get_client

        from deployments.workpool import ensure_work_pool, work_pool_name, worker_command

        pool = pool or work_pool_name()
        with get_client(sync_client=True) as client:
            ensure_work_pool(client, pool)
        console.print(f"Worker for backup host [bold]{host}[/] on work pool {pool} ({server.ui_url})")
        # The flow runs it starts inherit this: the same client settings as this command's.
        env = {**os.environ, **client_environment(server)}
    command = worker_command(sys.executable, pool, host, f"{host}@{socket.gethostname()}")
    sys.stdout.flush()
    # Replace this process: signals (Ctrl-C, SIGTERM from a service manager) reach the worker itself.
    os.execvpe(command[0], command, env)
