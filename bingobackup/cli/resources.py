"""`bingobackup resources …`: browse, search and filter a registered cloud's VMs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.tree import Tree

from bingobackup.cli.common import console, registry
from bingobackup.mover.chunks import human_bytes

if TYPE_CHECKING:
    from bingobackup.resources.discovery import CloudTree, StorageEntry, VmEntry

app = typer.Typer(
    help="Browse a cloud: clusters → nodes → VMs → disks, or storages → VMs → disks.", no_args_is_help=True
)


def _vm_line(vm: VmEntry, backup_hosts: set[str]) -> str:
    i = vm.instance
    role = " [magenta]backup host[/]" if vm.instance_id in backup_hosts else ""
    return (
        f"[bold]{vm.name}[/] ({vm.instance_id}) {i.state.name}, {i.cpu} vCPU, "
        f"{i.memory_mib} MiB, {len(i.network_interfaces)} NIC, {i.os_name} {i.os_version}{role}"
    )


def _add_disks(branch: Tree, vm: VmEntry) -> None:
    for d in vm.disks:
        kind = "system disk" if d.system else "data disk"
        branch.add(
            f"{d.volume_id} {d.device} {human_bytes(d.size_bytes)} ({kind}) {d.format} on {d.storage_id}"
        )


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
                _add_disks(n_branch.add(_vm_line(vm, backup_hosts)), vm)
    return root


def render_storages(entries: list[StorageEntry], tree: CloudTree, title: str, backup_hosts: set[str]) -> Tree:
    """The storage view: each storage with its space, the VMs on it and their disks there."""
    root = Tree(f"[bold]{title}[/]")
    cluster_names = {c.cluster.cluster_id: c.cluster.name for c in tree.clusters}
    for entry in entries:
        s = entry.storage
        space = (
            f"{human_bytes(s.space_free_bytes)} free of {human_bytes(s.space_max_bytes)} ({s.free_percent:.0f}%)"
            if s.space_max_bytes
            else s.status
        )
        cluster = cluster_names.get(s.cluster_id, s.cluster_id)
        branch = root.add(f"[cyan]storage[/] {s.name} ({s.storage_id}) {s.type}, {cluster}, {space}")
        if not entry.vms:
            branch.add("[dim]no VM disk[/]")
        for vm in entry.vms:
            _add_disks(branch.add(f"{_vm_line(vm, backup_hosts)} on {vm.node_id}"), vm)
    return root


@app.command()
def browse(
    cloud: str = typer.Option(..., help="Registered cloud"),
    by: str = typer.Option(
        "cluster", "--by", help="cluster: clusters → nodes → VMs; storage: storages → VMs → their disks there"
    ),
) -> None:
    """Show every cluster, node, VM and disk of a cloud, or every storage and the VM disks on it."""
    if by not in ("cluster", "storage"):
        raise typer.BadParameter(f"--by is cluster or storage, not {by!r}", param_hint="--by")
    _show(cloud, keyword=None, by_storage=by == "storage")


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
    cloud: str,
    keyword: str | None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    by_storage: bool = False,
) -> None:
    from bingobackup.resources.access import cloud_for
    from bingobackup.resources.discovery import CloudTree, search_vms
    from bingobackup.resources.discovery import by_storage as storage_view
    from bingobackup.resources.hosts import registered_backup_host_ids
    from bingobackup.specs.selection import SelectionFilters

    with registry() as (store, user):
        registration = cloud_for(store, user, cloud)
        hosts = registered_backup_host_ids(store, cloud)
    client = registration.client()
    tree = CloudTree.from_client(client)
    title = f"cloud {cloud} ({registration.endpoint})"
    if by_storage:
        entries = storage_view(tree, client.describe_storages())
        console.print(render_storages(entries, tree, title, hosts))
        return
    names = None
    if keyword is not None:
        filters = SelectionFilters(include=include or ["*"], exclude=exclude or [])
        names = {vm.instance_id for vm in search_vms(tree, keyword) if filters.matches(vm.name)}
        if not names:
            console.print(f"No VM of cloud '{cloud}' matches '{keyword}'.")
            raise typer.Exit(1)
    console.print(render_tree(tree, title, hosts, names))
