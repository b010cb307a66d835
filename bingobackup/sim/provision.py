"""Provisioning a whole VM (records + disk files) from a declarative spec.

Used by the scenarios (generated content) and by add-vm (copies of the user's raw images).
"""

from __future__ import annotations

import random
from pathlib import Path

from pydantic import BaseModel, Field

from bingobackup.sim.builder import device_name, new_instance, new_volume, resolve_instance_type
from bingobackup.sim.content import ContentMix, write_disk_image
from bingobackup.sim.errors import SimApiError
from bingobackup.sim.network import make_nic, subnets_of_cluster
from bingobackup.sim.state import InstanceRec, NicRec, StateStore, link_device
from bingobackup.sparse import copy_sparse, create_sparse_file

GIB = 1 << 30
MIB = 1 << 20


class DiskSpec(BaseModel):
    size_bytes: int = 10 * GIB
    data_bytes: int = 16 * MIB  # generated content; ignored when `image` is given
    image: Path | None = None  # copy this raw image (holes kept) instead of generating
    format: str = "qcow2"
    name: str = ""
    mix: ContentMix | None = None


class VmSpec(BaseModel):
    name: str
    cluster: str  # name or id
    node: str | None = None  # node id or node name; default: the cluster's least busy node
    storage: str | None = None  # default: the cluster's first storage
    instance_type: str = "m1.medium"
    os_name: str = "Ubuntu"
    os_version: str = "20.04"
    platform: str = "linux"
    disks: list[DiskSpec] = Field(min_length=1)
    subnets: list[str] = Field(default_factory=list, description="subnet names or ids, one per NIC")
    nics: int = 1  # used when `subnets` is empty: NICs on the cluster's first subnets
    state: str = "running"


def _pick_node(store: StateStore, cluster_id: str, wanted: str | None) -> str:
    state = store.state
    nodes = [n for n in state.nodes.values() if n.cluster_id == cluster_id]
    if wanted is not None:
        for node in nodes:
            if wanted in (node.node_id, node.node_id.split("@", 1)[0]):
                return node.node_id
        raise SimApiError(
            "InvalidNode.NotFound", f"The node '{wanted}' does not exist in cluster {cluster_id}."
        )
    if not nodes:
        raise SimApiError("InvalidNode.NotFound", f"The cluster {cluster_id} has no node to place a VM on.")
    load = {n.node_id: 0 for n in nodes}
    for instance in state.instances.values():
        if instance.node_id in load:
            load[instance.node_id] += 1
    return min(load, key=lambda node_id: load[node_id])


def _pick_storage(store: StateStore, cluster_id: str, wanted: str | None) -> str:
    storages = [s for s in store.state.storages.values() if s.cluster_id == cluster_id]
    for storage in storages:
        if wanted is None or wanted in (storage.storage_id, storage.name):
            return storage.storage_id
    raise SimApiError(
        "InvalidStorage.NotFound",
        f"The storage '{wanted or '(any)'}' does not exist in cluster {cluster_id}.",
    )


def _subnet_ids(store: StateStore, cluster_id: str, spec: VmSpec) -> list[str]:
    state = store.state
    in_cluster = subnets_of_cluster(state, cluster_id)
    if not spec.subnets:
        if not in_cluster:
            raise SimApiError("InvalidSubnetID.NotFound", f"The cluster {cluster_id} has no subnet.")
        return [in_cluster[i % len(in_cluster)] for i in range(spec.nics)]
    by_name = {state.subnets[s].name: s for s in in_cluster}
    found = []
    for wanted in spec.subnets:
        subnet_id = wanted if wanted in in_cluster else by_name.get(wanted)
        if subnet_id is None:
            raise SimApiError(
                "InvalidSubnetID.NotFound", f"The subnet '{wanted}' does not exist in {cluster_id}."
            )
        found.append(subnet_id)
    return found


def provision_vm(store: StateStore, spec: VmSpec, *, seed: str | None = None) -> InstanceRec:
    """Add the VM with its NICs and disks (files written); the caller holds the lock and saves."""
    state = store.state
    cluster = state.cluster_by_name_or_id(spec.cluster)
    if cluster is None:
        raise SimApiError("InvalidCluster.NotFound", f"The cluster '{spec.cluster}' does not exist.")
    node_id = _pick_node(store, cluster.cluster_id, spec.node)
    storage_id = _pick_storage(store, cluster.cluster_id, spec.storage)
    type_name, cpu, memory = resolve_instance_type(state, spec.instance_type, None, None)
    rng = random.Random(seed or spec.name)
    nics: list[NicRec] = []
    for index, subnet_id in enumerate(_subnet_ids(store, cluster.cluster_id, spec)):
        nics.append(make_nic(state, device_index=index, subnet_id=subnet_id, rng=rng, reserved=nics))
    instance = new_instance(
        state,
        name=spec.name,
        node_id=node_id,
        storage_id=storage_id,
        instance_type=type_name,
        cpu=cpu,
        memory_mib=memory,
        nics=nics,
        os_name=spec.os_name,
        os_version=spec.os_version,
        platform=spec.platform,
        initial_state=spec.state,  # type: ignore[arg-type]
    )
    for index, disk in enumerate(spec.disks):
        size = disk.image.stat().st_size if disk.image is not None else disk.size_bytes
        volume = new_volume(
            state,
            size_bytes=size,
            storage_id=storage_id,
            node_id=node_id,
            name=disk.name or f"{spec.name}-disk{index}",
            is_root=index == 0,
            volume_format=disk.format,
            attach_to=instance.instance_id,
            device=device_name(index),
        )
        path = store.volume_path(volume.volume_id)
        if disk.image is not None:
            copy_sparse(disk.image, path)
        elif disk.data_bytes:
            write_disk_image(
                path,
                size,
                f"{seed or spec.name}:{index}",
                data_fraction=min(1.0, disk.data_bytes / size),
                mix=disk.mix,
            )
        else:
            create_sparse_file(path, size)
        link_device(store, volume)
    return instance
