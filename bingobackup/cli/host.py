"""`bingobackup host …`: backup hosts — register, activate, authorize (guide §3.3)."""

from __future__ import annotations

import os
import shlex
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import typer
from rich.table import Column, Table

from bingobackup.cli.common import acting_user_name, authorize_command, console, err_console, registry

if TYPE_CHECKING:
    from bingobackup.resources.models import BackupHost

app = typer.Typer(help="Backup hosts: VMs in the cloud that run the agent.", no_args_is_help=True)


def _os_text(host: BackupHost) -> str:
    """The OS and, unless the cloud said it, who did: the admin's word is checked only on the host."""
    text = f"{host.os_name} {host.os_version} {host.architecture}"
    if host.os_source == "admin":
        return f"{text} (confirmed by admin)"
    return f"{text} (from {host.os_source})" if host.os_source != "cloud" else text


def _age(moment: datetime | None) -> str:
    """How long ago, short enough for the table: '12 s ago', '5 min ago', '3 h ago', a date."""
    if moment is None:
        return "never"
    seconds = max(0, int((datetime.now(UTC) - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min ago"
    if seconds < 48 * 3600:
        return f"{seconds // 3600} h ago"
    return f"{moment.astimezone():%Y-%m-%d %H:%M}"


@app.command()
def register(
    instance_ids: list[str] = typer.Argument(..., help="Instance id(s) of the backup-host VM(s)"),
    cloud: str = typer.Option(..., help="Registered cloud the VMs belong to"),
    activate: bool = typer.Option(False, help="Activate them right away"),
    device_root: str = typer.Option(
        "/",
        help="Where the agent sees the host's /dev/disk/by-id ('/' on the host; STATE/hosts/ID for the simulator)",
    ),
    os: str = typer.Option(
        None,
        "--os",
        help='The OS the VMs run, e.g. "Ubuntu 20.04", when BingoCloud does not say (neither the instance '
        "nor its image names it); the worker checks it when it starts on the host",
    ),
) -> None:
    """Register VMs as backup hosts after checking their OS against the compatibility list (admin)."""
    from bingobackup.resources.hosts import activate_backup_host, register_backup_host

    with registry() as (store, user):
        for instance_id in instance_ids:
            host = register_backup_host(store, user, cloud, instance_id, confirmed_os=os)
            if device_root != "/":
                host.device_root = device_root
                store.save_host(host)
            if activate:
                host = activate_backup_host(store, user, instance_id)
            state = "activated" if host.activated else "registered (activate it next)"
            console.print(
                f"Backup host [bold]{host.instance_id}[/] ({host.name}, {_os_text(host)}, "
                f"cluster {host.cluster_id}) {state}."
            )


@app.command()
def activate(instance_ids: list[str]) -> None:
    """Activate registered backup hosts (admin; single or batch)."""
    from bingobackup.resources.hosts import activate_backup_host

    with registry() as (store, user):
        for instance_id in instance_ids:
            activate_backup_host(store, user, instance_id)
            console.print(f"Backup host [bold]{instance_id}[/] activated.")


app.command("authorize")(authorize_command("host", "Backup host"))


@app.command()
def deregister(instance_id: str) -> None:
    """Forget a backup host (admin)."""
    from bingobackup.resources.hosts import deregister_backup_host

    with registry() as (store, user):
        deregister_backup_host(store, user, instance_id)
    console.print(f"Backup host [bold]{instance_id}[/] deregistered.")


@app.command("list")
def list_() -> None:
    """Backup hosts you may use, with their worker's online state and last heartbeat."""
    from prefect.client.orchestration import get_client

    from bingobackup.resources.access import may_use
    from deployments.workpool import WORKER_SILENCE, polled_recently, queue_last_polled, work_pool_name

    pool = work_pool_name()
    with registry() as (store, user):
        hosts = [h for h in store.list_hosts() if may_use(user, h.groups)]
        with get_client(sync_client=True) as client:
            polls = {h.instance_id: queue_last_polled(client, pool, h.instance_id) for h in hosts}
    # The state columns never wrap: a narrow terminal shortens the names instead.
    table = Table(
        Column("instance", no_wrap=True),
        "name",
        "cloud",
        "cluster",
        "node",
        Column("OS", no_wrap=True),
        "activated",
        Column("worker", no_wrap=True),
        Column("last heartbeat", no_wrap=True),
        "groups",
    )
    for h in hosts:
        last = polls[h.instance_id]
        table.add_row(
            h.instance_id,
            h.name,
            h.cloud,
            h.cluster_id,
            h.node_id,
            _os_text(h),
            "yes" if h.activated else "no",
            "online" if polled_recently(last) else "offline",
            _age(last),
            ", ".join(h.groups),
        )
    console.print(table)
    console.print(
        f"online: the worker polled its work queue in pool {pool} within the last "
        f"{int(WORKER_SILENCE.total_seconds())} s."
    )


@app.command("install-command")
def install_command(
    instance_id: str = typer.Argument(..., help="Instance id of the backup host"),
    api_url: str = typer.Option(
        None,
        "--api-url",
        help="Prefect API URL as the backup host reaches it (default: the server this command uses)",
    ),
    venv: str = typer.Option("/opt/bingobackup", "--venv", help="Where the agent's venv goes on the host"),
) -> None:
    """Print the script that installs the agent on a backup host (run it there as root; docs/agent.md)."""
    from importlib.metadata import version

    from bingobackup.cli.prefect_server import auth_string_file, status
    from bingobackup.cli.worker import checked_api_url, unit_name
    from bingobackup.resources.access import backup_host_for
    from deployments.workpool import work_pool_name

    with registry() as (store, user):
        host = backup_host_for(store, user, instance_id)
        server = status()
    api_url = checked_api_url(api_url or (server.url if server else ""))
    if urlsplit(api_url).hostname in ("127.0.0.1", "localhost", "::1"):
        err_console.print(
            f"[yellow]{api_url} is this machine's loopback address: the backup host cannot reach it. "
            "Pass --api-url with an address of the Prefect server the host can reach.[/]"
        )
    environment = {"PREFECT_API_URL": api_url}
    if user_name := acting_user_name():
        environment["BINGOBACKUP_USER"] = user_name
    setting = " ".join(shlex.quote(f"{k}={v}") for k, v in environment.items())
    # A server with basic auth: the script takes the string from the admin's environment (never
    # printed here) and `worker install-service` writes it to the unit's 0600 environment file.
    needs_auth = bool((server and server.auth_string) or os.environ.get("PREFECT_API_AUTH_STRING"))
    auth_lines = ""
    if needs_auth:
        where = auth_string_file() if server and server.auth_string else "the server's admin"
        err_console.print(
            "The Prefect server requires its basic-auth string: run the script with "
            f"PREFECT_API_AUTH_STRING set to it (kept in {where}).",
            highlight=False,
        )
        auth_lines = (
            "# The Prefect server requires its basic-auth string: run this script with PREFECT_API_AUTH_STRING set;\n"
            "# worker install-service keeps it in the unit's environment file (mode 0600).\n"
            ': "${PREFECT_API_AUTH_STRING:?set PREFECT_API_AUTH_STRING to the Prefect server\'s auth string}"\n'
            "export PREFECT_API_AUTH_STRING\n"
        )
    bin_dir = shlex.quote(f"{venv}/bin")
    print(
        f"""# bingobackup agent of backup host {host.instance_id} ({host.name}, {host.os_name} {host.os_version}).
# Run as root on that host. Python 3.11 or newer first: see docs/agent.md (PYTHON= picks one).
set -e
{auth_lines}PY="${{PYTHON:-$(command -v python3.13 || command -v python3.12 || command -v python3.11 || true)}}"
[ -n "$PY" ] || {{ echo "bingobackup needs Python 3.11 or newer: install it first (docs/agent.md)" >&2; exit 1; }}
"$PY" -m venv {shlex.quote(venv)}
{bin_dir}/pip install {shlex.quote(f"bingobackup=={version('bingobackup')}")}
{setting} {bin_dir}/bingobackup worker install-service --host {shlex.quote(host.instance_id)} --pool {shlex.quote(work_pool_name())}
systemctl daemon-reload && systemctl enable --now {unit_name(host.instance_id)}"""
    )
