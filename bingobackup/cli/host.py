"""`bingobackup host …`: backup hosts — register, activate, authorize (guide §3.3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.table import Table

from bingobackup.cli.common import authorize_command, console, registry

if TYPE_CHECKING:
    from bingobackup.resources.models import BackupHost

app = typer.Typer(help="Backup hosts: VMs in the cloud that run the agent.", no_args_is_help=True)


def _os_text(host: BackupHost) -> str:
    """The OS and, unless the cloud said it, who did: the admin's word is checked only on the host."""
    text = f"{host.os_name} {host.os_version} {host.architecture}"
    if host.os_source == "admin":
        return f"{text} (confirmed by admin)"
    return f"{text} (from {host.os_source})" if host.os_source != "cloud" else text


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
    """Backup hosts you may use."""
    from bingobackup.resources.access import may_use

    with registry() as (store, user):
        hosts = [h for h in store.list_hosts() if may_use(user, h.groups)]
    table = Table("instance", "name", "cloud", "cluster", "node", "OS", "activated", "groups")
    for h in hosts:
        table.add_row(
            h.instance_id,
            h.name,
            h.cloud,
            h.cluster_id,
            h.node_id,
            _os_text(h),
            "yes" if h.activated else "no",
            ", ".join(h.groups),
        )
    console.print(table)
