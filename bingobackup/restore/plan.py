"""Turning a restore spec into a checked plan: every name, node, storage, subnet, address.

Everything is resolved and checked against the target cluster *before* anything is created,
so a wrong subnet or an address already in use is refused with nothing to clean up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.models import Instance, NicSpec
from bingobackup.errors import BingoBackupError
from bingobackup.restore.source import BackedUpDisk, BackedUpNic, BackedUpVm
from bingobackup.specs.restore import BatchTarget, DiskTarget, NicTarget, RestoreSpec, VmTarget


class RestorePlanError(BingoBackupError):
    pass


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class DiskPlan(_Frozen):
    source: BackedUpDisk
    name: str
    storage_id: str
    device_name: str  # where it is attached on the new VM (VM restore); chosen at attach time otherwise


class VmPlan(_Frozen):
    source: BackedUpVm
    name: str
    skip_reason: str = ""
    node_id: str | None = None
    instance_type: str | None = None
    cpu: int | None = None
    memory_mib: int | None = None
    disks: tuple[DiskPlan, ...] = ()
    nics: tuple[NicSpec, ...] = ()
    attach_to: str = ""  # disk restore: the instance the new volumes are attached to

    @property
    def root(self) -> DiskPlan | None:
        return next((d for d in self.disks if d.source.is_root), None)

    @property
    def data_disks(self) -> list[DiskPlan]:
        return [d for d in self.disks if not d.source.is_root]

    @property
    def node_key(self) -> str:
        return self.node_id or "any"


@dataclass
class _Cluster:
    """What the target cluster offers, read once per plan."""

    cluster_id: str
    nodes: set[str]
    storages: list[str]
    subnets: dict[str, str]  # subnet id → vpc id
    groups: dict[str, str]  # security group id → vpc id
    live: list[Instance]

    @classmethod
    def read(cls, client: BingoCloudClient, cluster_id: str) -> _Cluster:
        vpcs = {v.vpc_id for v in client.describe_vpcs() if v.cluster_id == cluster_id}
        return cls(
            cluster_id=cluster_id,
            nodes={
                n.node_id for n in client.describe_nodes(cluster_id=cluster_id) if n.status == "available"
            },
            storages=[s.storage_id for s in client.describe_storages(cluster_id=cluster_id)],
            subnets={s.subnet_id: s.vpc_id for s in client.describe_subnets() if s.vpc_id in vpcs},
            groups={g.group_id: g.vpc_id for g in client.describe_security_groups() if g.vpc_id in vpcs},
            live=[
                i for i in client.describe_instances() if i.state.name not in ("terminated", "shutting-down")
            ],
        )

    def holder_of(self, what: str, value: str) -> str | None:
        for instance in self.live:
            for nic in instance.network_interfaces:
                if value == (nic.private_ip_address if what == "ip" else nic.mac_address.lower()):
                    return f"{instance.name} ({instance.instance_id})"
        return None


def _first(*values: object) -> object:
    return next((v for v in values if v is not None), None)


def _storage(cluster: _Cluster, vm: BackedUpVm, disk: BackedUpDisk, *choices: str | None) -> str:
    chosen = next((c for c in choices if c), None)
    if chosen is None:
        same = vm.cluster_id == cluster.cluster_id and disk.storage_id in cluster.storages
        chosen = disk.storage_id if same else (cluster.storages[0] if cluster.storages else "")
    if chosen not in cluster.storages:
        raise RestorePlanError(
            f"Disk {disk.volume_id} of {vm.label}: storage {chosen!r} is not a storage of target cluster "
            f"{cluster.cluster_id} (its storages: {', '.join(cluster.storages) or 'none'}). Set the disk's storage."
        )
    return chosen


def _disks(
    cluster: _Cluster,
    vm: BackedUpVm,
    target: VmTarget,
    batch: BatchTarget,
    vm_name: str,
    *,
    chosen_only: bool,
) -> tuple[DiskPlan, ...]:
    asked = {d.volume: d for d in target.disks}
    unknown = set(asked) - {d.volume_id for d in vm.disks}
    if unknown:
        raise RestorePlanError(
            f"{vm.label} has no backed-up disk {', '.join(sorted(unknown))}; its disks are "
            f"{', '.join(d.volume_id for d in vm.disks)}."
        )
    plans = []
    for n, disk in enumerate(vm.disks):
        if chosen_only and asked and disk.volume_id not in asked:
            continue
        own = asked.get(disk.volume_id, DiskTarget(volume=disk.volume_id))
        default_name = disk.name or f"{vm_name}-{'root' if disk.is_root else f'disk{n}'}"
        plans.append(
            DiskPlan(
                source=disk,
                name=own.name or batch.disk_name_for(vm_name, default_name, n) or default_name,
                storage_id=_storage(cluster, vm, disk, own.storage, target.storage, batch.storage),
                device_name=disk.device_name,
            )
        )
    return tuple(plans)


def _nic(
    cluster: _Cluster, vm: BackedUpVm, nic: BackedUpNic, own: NicTarget, batch: BatchTarget, index: int
) -> NicSpec:
    where = f"NIC {nic.device_index} of {vm.label}"
    same_cluster = vm.cluster_id == cluster.cluster_id
    subnet = own.subnet or batch.subnet or (nic.subnet_id if same_cluster else None)
    if subnet is None or subnet not in cluster.subnets:
        raise RestorePlanError(
            f"{where}: subnet {subnet or nic.subnet_id!r} is not in target cluster {cluster.cluster_id} "
            f"(its subnets: {', '.join(cluster.subnets) or 'none'}). Set target.nics[].subnet."
        )
    ip_choice = own.ip if "ip" in own.model_fields_set else (batch.ip or own.ip)
    mac_choice = own.mac if "mac" in own.model_fields_set else (batch.mac or own.mac)
    ip = {"keep": nic.private_ip_address, "auto": None}.get(ip_choice, ip_choice)
    if ip_choice == "keep" and subnet != nic.subnet_id:
        raise RestorePlanError(
            f"{where}: the IP {nic.private_ip_address} can be kept only in its subnet {nic.subnet_id}, "
            f"not in {subnet}. Set ip: auto or an address of {subnet}."
        )
    mac = {"keep": nic.mac_address.lower() or None, "auto": None}.get(mac_choice, mac_choice)
    for what, value in (("ip", ip), ("mac", mac)):
        holder = cluster.holder_of(what, value) if value else None
        if holder:
            raise RestorePlanError(
                f"{where}: the {what.upper()} {value} is in use by VM {holder}. Set {what}: auto, another "
                "address, or remove that VM first."
            )
    vpc = cluster.subnets[subnet]
    groups = own.security_groups or batch.security_groups
    if groups is None:
        groups = [g for g in nic.security_group_ids if cluster.groups.get(g) == vpc]
    wrong = [g for g in groups if cluster.groups.get(g) != vpc]
    if wrong:
        raise RestorePlanError(
            f"{where}: security group(s) {', '.join(wrong)} are not in the subnet's network {vpc}. "
            f"Its groups: {', '.join(g for g, v in cluster.groups.items() if v == vpc) or 'none'}."
        )
    return NicSpec(
        device_index=index,
        subnet_id=subnet,
        private_ip_address=ip or None,
        mac_address=mac or None,
        security_group_ids=tuple(groups),
    )


def _nics(cluster: _Cluster, vm: BackedUpVm, target: VmTarget, batch: BatchTarget) -> tuple[NicSpec, ...]:
    asked = {n.index: n for n in target.nics}
    known = {n.device_index for n in vm.nics}
    if set(asked) - known:
        raise RestorePlanError(
            f"{vm.label} had no NIC with index {sorted(set(asked) - known)}; its NICs: {sorted(known)}."
        )
    ordered = sorted(vm.nics, key=lambda n: n.device_index)
    primary = next((n for n in ordered if asked.get(n.device_index, NicTarget(index=0)).primary), None)
    if primary is not None:  # the primary NIC is the one at device index 0
        ordered = [primary, *[n for n in ordered if n is not primary]]
    specs = [
        _nic(cluster, vm, nic, asked.get(nic.device_index, NicTarget(index=nic.device_index)), batch, i)
        for i, nic in enumerate(ordered)
    ]
    for what in ("private_ip_address", "mac_address"):
        values = [getattr(s, what) for s in specs if getattr(s, what)]
        if len(values) != len(set(values)):
            raise RestorePlanError(
                f"{vm.label}: two NICs would get the same {what.replace('_', ' ')}: {values}."
            )
    return tuple(specs)


def _name(vm: BackedUpVm, target: VmTarget, batch: BatchTarget) -> str:
    if target.name:
        return target.name
    prefix = target.name_prefix or batch.name_prefix
    suffix = target.name_suffix or batch.name_suffix
    return f"{prefix}{vm.name}{suffix}"


def _node(cluster: _Cluster, vm: BackedUpVm, target: VmTarget, batch: BatchTarget) -> str | None:
    node = target.node or batch.node
    if node is None:
        same = vm.cluster_id == cluster.cluster_id and vm.node_id in cluster.nodes
        return vm.node_id if same else None
    if node not in cluster.nodes:
        raise RestorePlanError(
            f"{vm.label}: node {node!r} is not an available node of target cluster {cluster.cluster_id} "
            f"(available: {', '.join(sorted(cluster.nodes)) or 'none'})."
        )
    return node


def _vm_plan(
    cluster: _Cluster, spec: RestoreSpec, vm: BackedUpVm, target: VmTarget, taken: set[str], now: datetime
) -> VmPlan:
    batch = spec.batch
    name = _name(vm, target, batch)
    if name in taken:
        if spec.same_name == "skip":
            return VmPlan(source=vm, name=name, skip_reason=f"a VM named {name!r} exists (same_name: skip)")
        name = f"{name}-{now:%Y%m%d%H%M%S}"
    taken.add(name)
    instance_type = target.instance_type or batch.instance_type
    cpu = _first(target.cpu, batch.cpu)
    memory = _first(target.memory_mib, batch.memory_mib)
    if instance_type is None or cpu is not None or memory is not None:
        # Explicit CPU/memory override the type's; otherwise the backed-up VM's values.
        instance_type = instance_type or vm.instance_type or None
        cpu = cpu if cpu is not None else (vm.cpu or None)
        memory = memory if memory is not None else (vm.memory_mib or None)
    disks = _disks(cluster, vm, target, batch, name, chosen_only=False)
    if not any(d.source.is_root for d in disks):
        raise RestorePlanError(f"{vm.label} has no backed-up system disk: restore its disks with kind: disk.")
    return VmPlan(
        source=vm,
        name=name,
        node_id=_node(cluster, vm, target, batch),
        instance_type=instance_type,
        cpu=cpu,
        memory_mib=memory,
        disks=disks,
        nics=_nics(cluster, vm, target, batch),
    )


def _disk_plan(cluster: _Cluster, spec: RestoreSpec, vm: BackedUpVm, target: VmTarget) -> VmPlan:
    attach_to = target.attach_to or spec.batch.attach_to or "original"
    instance_id = vm.vm_id if attach_to == "original" else attach_to
    instance = next((i for i in cluster.live if i.instance_id == instance_id), None)
    if instance is None:
        what = f"the original VM {vm.vm_id}" if attach_to == "original" else f"VM {instance_id}"
        raise RestorePlanError(
            f"{vm.label}: {what} is not a live VM of target cluster {cluster.cluster_id}, so the restored "
            "disks cannot be attached to it. Set target.attach_to to an instance id of that cluster."
        )
    if instance.cluster_id != cluster.cluster_id:
        raise RestorePlanError(
            f"{vm.label}: VM {instance_id} is in cluster {instance.cluster_id}, but the backup host is in "
            f"{cluster.cluster_id}; pick a backup host of the VM's cluster."
        )
    disks = _disks(cluster, vm, target, spec.batch, vm.name, chosen_only=True)
    return VmPlan(source=vm, name=instance.name, node_id=instance.node_id, disks=disks, attach_to=instance_id)


class RestorePlan(_Frozen):
    spec_name: str
    kind: str
    cluster_id: str
    vms: tuple[VmPlan, ...]

    @property
    def to_restore(self) -> list[VmPlan]:
        return [v for v in self.vms if not v.skip_reason]

    @property
    def total_bytes(self) -> int:
        return sum(d.source.size_bytes for v in self.to_restore for d in v.disks)


def plan_restore(
    client: BingoCloudClient,
    spec: RestoreSpec,
    sources: Sequence[BackedUpVm],
    cluster_id: str,
    now: datetime | None = None,
) -> RestorePlan:
    """The checked plan for `spec` (`sources[i]` is the backed-up VM of `spec.vms[i]`)."""
    cluster = _Cluster.read(client, cluster_id)
    taken = {i.name for i in cluster.live}
    moment = now or datetime.now(UTC)
    plans = [
        _vm_plan(cluster, spec, vm, item.target, taken, moment)
        if spec.kind == "vm"
        else _disk_plan(cluster, spec, vm, item.target)
        for item, vm in zip(spec.vms, sources, strict=True)
    ]
    return RestorePlan(spec_name=spec.name, kind=spec.kind, cluster_id=cluster_id, vms=tuple(plans))
