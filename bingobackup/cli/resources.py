"""`bingobackup resources …`: browse, search and filter a registered cloud's VMs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.tree import Tree

from bingobackup.cli.common import console, registry
from bingobackup.mover.chunks import human_bytes

if TYPE_CHECKING:
    from bingobackup.resources.discovery import CloudTree

app = typer.Typer(help="Browse a cloud: clusters → nodes → VMs → disks.", no_args_is_help=True)


def render_tree(
    tree: CloudTree, title: str, backup_hosts: set[str] | None = None, vm_names: set[str] | None = None
) -> Tree:
    """The cloud as a rich tree; `vm_names` limits it to those VMs (search results)."""
    root = Tree(f"[bold]{title}[/]")
    backup_hosts = backup_hosts or set()
    for cluster, node_entries in ((c, c.nodes) for c in tree.clusters):
        c_branch = root.add(f"[cyan]cluster[/] {cluster.cluster.name} ({cluster.cluster.cluster_id})")
        for node in node_entries:
            vms = [vm for vm in node.vms if vm_names is None or vm.instance_id in vm_names]
            if vm_names is not None and not vms:
                continue
            n_branch = c_branch.add(f"[green]node[/] {node.node.node_id} [dim]{node.node.status}[/]")
            for vm in vms:
                i = vm.instance
                role = " [magenta]backup host[/]" if vm.instance_id in backup_hosts else ""
                v_branch = n_branch.add(
                    f"[bold]{vm.name}[/] ({vm.instance_id}) {i.state.name}, {i.cpu} vCPU, "
                    f"{i.memory_mib} MiB, {len(i.network_interfaces)} NIC, {i.os_name} {i.os_version}{role}"
                )
                for d in vm.disks:
                    kind = "system disk" if d.system else "data disk"
                    v_branch.add(
                        f"{d.volume_id} {d.device} {human_bytes(d.size_bytes)} ({kind}) {d.format} on {d.storage_id}"
                    )
    return root


@app.command()
def browse(cloud: str = typer.Option(..., help="Registered cloud")) -> None:
    """Show every cluster, node, VM and disk of a cloud."""
    _show(cloud, keyword=None)


@app.command()
def search(
    keyword: str,
    cloud: str = typer.Option(..., help="Registered cloud"),
    include: list[str] = typer.Option([], help="Wildcard rule on VM names to keep (repeatable)"),
    exclude: list[str] = typer.Option([], help="Wildcard rule on VM names to drop (repeatable)"),
) -> None:
    """Find VMs whose name contains KEYWORD, then apply wildcard include/exclude rules."""
    _show(cloud, keyword=keyword, include=include, exclude=exclude)


def _show(
    cloud: str, keyword: str | None, include: list[str] | None = None, exclude: list[str] | None = None
) -> None:
    from bingobackup.resources.access import cloud_for
    from bingobackup.resources.discovery import CloudTree, SelectionFilters, search_vms
    from bingobackup.resources.hosts import registered_backup_host_ids

    with registry() as (store, user):
        registration = cloud_for(store, user, cloud)
        hosts = registered_backup_host_ids(store, cloud)
    tree = CloudTree.from_client(registration.client())
    names = None
    if keyword is not None:
        filters = SelectionFilters(include=include or ["*"], exclude=exclude or [])
        names = {vm.instance_id for vm in search_vms(tree, keyword) if filters.matches(vm.name)}
        if not names:
            console.print(f"No VM of cloud '{cloud}' matches '{keyword}'.")
            raise typer.Exit(1)
    console.print(render_tree(tree, f"cloud {cloud} ({registration.endpoint})", hosts, names))
