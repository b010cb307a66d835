"""Discovery: browse clusters → nodes → VMs → disks (or storages → VMs → disks), search,
filter, and resolve a job's content.

A job's content is resolved against the live cloud at run time, so selecting a cluster or
node means "every VM in it now", including VMs created after the job.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence

from pydantic import BaseModel, ConfigDict

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.models import Cluster, Instance, Node, Storage, Volume
from bingobackup.resources.access import not_found
from bingobackup.resources.errors import SelectionError, UnknownSelection
from bingobackup.specs.selection import ContentSelection, DiskChoice, SelectionFilters

# VMs in these states have no disks left to back up.
_GONE_STATES = frozenset({"terminated", "shutting-down"})
_BROWSE = "bingobackup resources browse"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Disk(_Frozen):
    volume_id: str
    name: str = ""
    size_bytes: int
    device: str = ""
    system: bool  # the VM's root (system) disk; every other disk is a data disk
    storage_id: str = ""
    format: str = ""

    @property
    def role(self) -> str:
        return "system" if self.system else "data"


class VmEntry(_Frozen):
    """A VM as the cloud describes it, with its disks (system disk first)."""

    instance: Instance
    disks: tuple[Disk, ...] = ()

    @property
    def instance_id(self) -> str:
        return self.instance.instance_id

    @property
    def name(self) -> str:
        return self.instance.name

    @property
    def cluster_id(self) -> str:
        return self.instance.cluster_id

    @property
    def node_id(self) -> str:
        return self.instance.node_id

    @property
    def size_bytes(self) -> int:
        return sum(d.size_bytes for d in self.disks)


class NodeEntry(_Frozen):
    node: Node
    vms: tuple[VmEntry, ...] = ()


class ClusterEntry(_Frozen):
    cluster: Cluster
    nodes: tuple[NodeEntry, ...] = ()

    def iter_vms(self) -> Iterator[VmEntry]:
        for node in self.nodes:
            yield from node.vms


class CloudTree(_Frozen):
    """A snapshot of the cloud's clusters → nodes → VMs → disks, in a stable order."""

    clusters: tuple[ClusterEntry, ...] = ()

    @classmethod
    def from_client(cls, client: BingoCloudClient) -> CloudTree:
        clusters = sorted(client.describe_clusters(), key=lambda c: (c.name, c.cluster_id))
        nodes = list(client.describe_nodes())
        instances = [i for i in client.describe_instances() if i.state.name not in _GONE_STATES]
        volumes = {v.volume_id: v for v in client.describe_volumes()}
        devices = _attached_devices(instances, volumes)
        vms_by_node: dict[str, list[VmEntry]] = {}
        for instance in instances:
            vms_by_node.setdefault(instance.node_id, []).append(
                VmEntry(instance=instance, disks=_disks_of(instance, devices[instance.instance_id], volumes))
            )
        known_nodes = {n.node_id for n in nodes}
        # A VM on a node DescribeNodes did not list still belongs in the tree.
        nodes += [
            Node(node_id=vm.node_id, cluster_id=vm.cluster_id)
            for node_id, vms in vms_by_node.items()
            if node_id not in known_nodes
            for vm in vms[:1]
        ]
        entries = []
        for cluster in clusters:
            cluster_nodes = sorted(
                (n for n in nodes if n.cluster_id == cluster.cluster_id), key=lambda n: n.node_id
            )
            entries.append(
                ClusterEntry(
                    cluster=cluster,
                    nodes=tuple(
                        NodeEntry(
                            node=node,
                            vms=tuple(
                                sorted(
                                    vms_by_node.get(node.node_id, []), key=lambda v: (v.name, v.instance_id)
                                )
                            ),
                        )
                        for node in cluster_nodes
                    ),
                )
            )
        return cls(clusters=tuple(entries))

    def iter_nodes(self) -> Iterator[tuple[ClusterEntry, NodeEntry]]:
        for cluster in self.clusters:
            for node in cluster.nodes:
                yield cluster, node

    def iter_vms(self) -> Iterator[VmEntry]:
        for cluster in self.clusters:
            yield from cluster.iter_vms()

    def find_cluster(self, ref: str) -> ClusterEntry:
        """The cluster whose id or name is `ref`."""
        for cluster in self.clusters:
            if ref in (cluster.cluster.cluster_id, cluster.cluster.name):
                return cluster
        known = [c.cluster.name for c in self.clusters] + [c.cluster.cluster_id for c in self.clusters]
        raise not_found("cluster", ref, known, _BROWSE, UnknownSelection)

    def find_node(self, ref: str) -> NodeEntry:
        """The node whose id (`name@ip`) or name is `ref`."""
        matches = [n for _, n in self.iter_nodes() if ref in (n.node.node_id, n.node.name)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            ids = ", ".join(n.node.node_id for n in matches)
            raise SelectionError(f"Node name '{ref}' is ambiguous: it matches {ids}. Use the full node id.")
        known = [n.node.node_id for _, n in self.iter_nodes()] + [n.node.name for _, n in self.iter_nodes()]
        raise not_found("node", ref, known, _BROWSE, UnknownSelection)

    def find_vm(self, ref: str) -> VmEntry:
        """The VM whose instance id or name is `ref`."""
        vms = list(self.iter_vms())
        for vm in vms:
            if vm.instance_id == ref:
                return vm
        named = [vm for vm in vms if vm.name == ref]
        if len(named) == 1:
            return named[0]
        if named:
            ids = ", ".join(vm.instance_id for vm in named)
            raise SelectionError(
                f"VM name '{ref}' is ambiguous: {ids} share it. Select the VM by instance id."
            )
        known = [vm.name for vm in vms] + [vm.instance_id for vm in vms]
        raise not_found("VM", ref, known, _BROWSE, UnknownSelection)


class StorageEntry(_Frozen):
    """A storage (datastore) and the VMs with a disk on it, each listing only those disks."""

    storage: Storage
    vms: tuple[VmEntry, ...] = ()


def by_storage(tree: CloudTree, storages: Iterable[Storage]) -> list[StorageEntry]:
    """The guide's storage view: every storage, with the VMs whose disks live on it.

    A VM with disks on two storages appears under both; a storage holding no VM disk is listed
    too (its free space is what an operator browses for). Storages in cluster, then name order.
    """
    known = {s.storage_id: s for s in storages}
    vms_on: dict[str, list[VmEntry]] = {}
    for vm in tree.iter_vms():
        for storage_id in dict.fromkeys(d.storage_id for d in vm.disks):
            disks = tuple(d for d in vm.disks if d.storage_id == storage_id)
            vms_on.setdefault(storage_id, []).append(vm.model_copy(update={"disks": disks}))
    for storage_id, vms in vms_on.items():
        # A disk on a storage DescribeStorages did not list still shows, under what is known of it.
        if storage_id not in known:
            known[storage_id] = Storage(
                storage_id=storage_id,
                name=storage_id or "(unknown storage)",
                cluster_id=vms[0].cluster_id,
                space_max_bytes=0,
                space_used_bytes=0,
                status="not listed by DescribeStorages",
            )
    cluster_names = {c.cluster.cluster_id: c.cluster.name for c in tree.clusters}
    ordered = sorted(
        known.values(), key=lambda s: (cluster_names.get(s.cluster_id, s.cluster_id), s.name, s.storage_id)
    )
    return [StorageEntry(storage=s, vms=tuple(vms_on.get(s.storage_id, ()))) for s in ordered]


def _attached_devices(instances: list[Instance], volumes: dict[str, Volume]) -> dict[str, dict[str, str]]:
    """Volume id → device, per instance, from the VMs' block devices and the volumes' attachments."""
    devices = {i.instance_id: {bd.volume_id: bd.device_name for bd in i.block_devices} for i in instances}
    for volume in volumes.values():
        for attachment in volume.attachments:
            if attachment.instance_id in devices:
                devices[attachment.instance_id].setdefault(volume.volume_id, attachment.device)
    return devices


def _disks_of(instance: Instance, devices: dict[str, str], volumes: dict[str, Volume]) -> tuple[Disk, ...]:
    disks = []
    for volume_id, device in devices.items():
        volume = volumes.get(volume_id)
        if volume is None:
            continue
        system = volume.is_root or device == instance.root_device_name
        disks.append(
            Disk(
                volume_id=volume_id,
                name=volume.name,
                size_bytes=volume.size_bytes,
                device=device,
                system=system,
                storage_id=volume.storage_id,
                format=volume.format,
            )
        )
    # System disk first, then data disks in device order (vdb, vdc, …).
    return tuple(sorted(disks, key=lambda d: (not d.system, d.device, d.volume_id)))


def search_vms(tree: CloudTree, keyword: str) -> list[VmEntry]:
    """VMs whose name contains `keyword` (case-insensitive); every VM for an empty keyword."""
    wanted = keyword.strip().lower()
    return [vm for vm in tree.iter_vms() if wanted in vm.name.lower()]


def filter_vms(vms: Sequence[VmEntry], filters: SelectionFilters) -> list[VmEntry]:
    return [vm for vm in vms if filters.matches(vm.name)]


class ResolvedVm(VmEntry):
    """A VM chosen for backup and only the disks of it to back up (system disk first)."""


def _chosen_disks(vm: VmEntry, choice: DiskChoice) -> set[str]:
    if choice == "all":
        return {d.volume_id for d in vm.disks}
    if choice == "system":
        return {d.volume_id for d in vm.disks if d.system}
    attached = {d.volume_id for d in vm.disks}
    for volume_id in choice:
        if volume_id not in attached:
            listed = ", ".join(f"{d.volume_id} ({'system' if d.system else 'data'})" for d in vm.disks)
            raise UnknownSelection(
                f"Volume '{volume_id}' is not a disk of VM '{vm.name}' ({vm.instance_id}); "
                f"its disks are: {listed or 'none'}."
            )
    return set(choice)


def resolve_selection(
    client: BingoCloudClient,
    selection: Sequence[ContentSelection],
    filters: SelectionFilters | None = None,
    *,
    backup_host_ids: Collection[str],
) -> list[ResolvedVm]:
    """The VMs and disks `selection` means in the cloud right now.

    Cluster and node entries take every VM in them that passes `filters`; a VM named
    explicitly is always taken, and its entry's disk choice overrides the broader ones.
    Backup hosts (`backup_host_ids`) are never selected: they would back themselves up.
    """
    tree = CloudTree.from_client(client)
    filters = filters or SelectionFilters()
    explicit: dict[str, set[str]] = {}
    broad: dict[str, set[str]] = {}
    for entry in selection:
        if entry.vm:
            vm = tree.find_vm(entry.vm)
            if vm.instance_id in backup_host_ids:
                raise SelectionError(
                    f"VM '{vm.name}' ({vm.instance_id}) is a backup host and cannot be backed up by the "
                    "agent it runs. Remove it from the job's content."
                )
            explicit.setdefault(vm.instance_id, set()).update(_chosen_disks(vm, entry.disks))
            continue
        scope = (
            tree.find_cluster(entry.cluster).iter_vms()
            if entry.cluster
            else tree.find_node(entry.node or "").vms
        )
        for vm in scope:
            if vm.instance_id not in backup_host_ids and filters.matches(vm.name):
                broad.setdefault(vm.instance_id, set()).update(_chosen_disks(vm, entry.disks))
    resolved = []
    for vm in tree.iter_vms():
        chosen = explicit.get(vm.instance_id, broad.get(vm.instance_id))
        disks = tuple(d for d in vm.disks if chosen and d.volume_id in chosen)
        if disks:
            resolved.append(ResolvedVm(instance=vm.instance, disks=disks))
    return resolved
