"""Making instance and volume records: shared by scenarios, add-vm and RunInstances."""

from __future__ import annotations

import string
import time

from bingobackup.sim.errors import SimApiError, not_found
from bingobackup.sim.state import (
    AttachmentRec,
    InstanceRec,
    InstanceStateName,
    NicRec,
    SimState,
    VolumeRec,
)


def device_name(index: int) -> str:
    """`/dev/vda` for disk 0 (the root disk), `/dev/vdb` for disk 1, …"""
    return f"/dev/vd{string.ascii_lowercase[index]}"


def next_free_device(state: SimState, instance_id: str) -> str:
    used = {
        v.attachment.device
        for v in state.volumes.values()
        if v.attachment and v.attachment.instance_id == instance_id
    }
    return next(device_name(i) for i in range(26) if device_name(i) not in used)


def new_volume(
    state: SimState,
    *,
    size_bytes: int,
    storage_id: str,
    node_id: str = "",
    name: str = "",
    is_root: bool = False,
    volume_format: str = "qcow2",
    status: str = "available",
    snapshot_id: str = "",
    attach_to: str | None = None,
    device: str | None = None,
) -> VolumeRec:
    """A volume record (the caller makes its file). `attach_to` attaches it at once."""
    storage = state.storages.get(storage_id)
    if storage is None:
        raise not_found("storage", storage_id)
    now = time.time()
    volume = VolumeRec(
        volume_id=state.new_id("vol"),
        name=name,
        size_bytes=size_bytes,
        snapshot_id=snapshot_id,
        status=status,
        create_time=now,
        cluster_id=storage.cluster_id,
        node_id=node_id,
        storage_id=storage_id,
        is_root=is_root,
        format=volume_format,
    )
    if attach_to is not None:
        volume.attachment = AttachmentRec(
            instance_id=attach_to,
            device=device or next_free_device(state, attach_to),
            attach_time=now,
            delete_on_termination=is_root,
        )
        volume.status = "in-use"
    state.volumes[volume.volume_id] = volume
    return volume


def resolve_instance_type(
    state: SimState, instance_type: str | None, cpu: int | None, memory_mib: int | None
) -> tuple[str, int, int]:
    """(type, cpu, memory): Cpu/Memory override the type's values."""
    name = instance_type or "m1.small"
    known = state.instance_types.get(name)
    if known is None:
        if instance_type is not None or cpu is None or memory_mib is None:
            raise SimApiError("InvalidInstanceType", f"The instance type '{name}' does not exist.")
        return name, cpu, memory_mib
    return name, cpu or known.cpu, memory_mib or known.memory_mib


def new_instance(
    state: SimState,
    *,
    name: str,
    node_id: str,
    storage_id: str,
    instance_type: str,
    cpu: int,
    memory_mib: int,
    nics: list[NicRec],
    os_name: str = "Ubuntu",
    os_version: str = "20.04",
    platform: str = "linux",
    image_id: str = "",
    initial_state: InstanceStateName = "running",
) -> InstanceRec:
    node = state.nodes.get(node_id)
    if node is None:
        raise not_found("node", node_id)
    instance = InstanceRec(
        instance_id=state.new_id("i"),
        reservation_id=state.new_id("r"),
        name=name,
        image_id=image_id,
        state=initial_state,
        instance_type=instance_type,
        cpu=cpu,
        memory_mib=memory_mib,
        cluster_id=node.cluster_id,
        node_id=node_id,
        storage_id=storage_id,
        launch_time=time.time(),
        platform=platform,
        os_name=os_name,
        os_version=os_version,
        nics=nics,
    )
    state.instances[instance.instance_id] = instance
    return instance
