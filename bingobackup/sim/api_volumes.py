"""Volumes and snapshots: sparse files under STATE/volumes and STATE/snapshots, shared copy-on-write."""

from __future__ import annotations

import time
from typing import Any

from bingobackup.sim.builder import new_volume
from bingobackup.sim.cloud import SimCloud
from bingobackup.sim.errors import SimApiError, incorrect_state, invalid, not_found
from bingobackup.sim.idempotency import idempotent
from bingobackup.sim.query import Params, matches, page, select_ids
from bingobackup.sim.state import AttachmentRec, SnapshotRec, VolumeRec
from bingobackup.sim.types import Handler
from bingobackup.sim.xml import iso_time
from bingobackup.sparse import create_sparse_file

GIB = 1 << 30
VOLUME_FILTERS = ["volume-id", "attachment.instance-id", "node-id", "storage-id", "status"]
SNAPSHOT_FILTERS = ["volume-id", "status"]


def _attachment_item(volume: VolumeRec, attachment: AttachmentRec) -> dict[str, Any]:
    return {
        "volumeId": volume.volume_id,
        "instanceId": attachment.instance_id,
        "device": attachment.device,
        "status": attachment.status,
        "attachTime": iso_time(attachment.attach_time),
    }


def volume_item(volume: VolumeRec) -> dict[str, Any]:
    return {
        "volumeId": volume.volume_id,
        "volumeName": volume.name,
        "size": -(-volume.size_bytes // GIB),
        "sizeBytes": volume.size_bytes,
        "snapshotId": volume.snapshot_id,
        "status": volume.status,
        "createTime": iso_time(volume.create_time),
        "clusterId": volume.cluster_id,
        "nodeId": volume.node_id,
        "storageId": volume.storage_id,
        "isRoot": volume.is_root,
        "format": volume.format,
        "serial": volume.serial,
        "attachmentSet": [_attachment_item(volume, volume.attachment)] if volume.attachment else [],
    }


def snapshot_item(snapshot: SnapshotRec) -> dict[str, Any]:
    return {
        "snapshotId": snapshot.snapshot_id,
        "volumeId": snapshot.volume_id,
        "status": snapshot.status,
        "startTime": iso_time(snapshot.start_time),
        "progress": "100%" if snapshot.status == "completed" else "0%",
        "volumeSize": -(-snapshot.volume_size_bytes // GIB),
        "volumeSizeBytes": snapshot.volume_size_bytes,
        "storageId": snapshot.storage_id,
        "description": snapshot.description,
    }


def _volume(cloud: SimCloud, params: Params) -> VolumeRec:
    volume_id = params.require("VolumeId")
    volume = cloud.state.volumes.get(volume_id)
    if volume is None:
        raise not_found("volume", volume_id)
    return volume


def describe_volumes(cloud: SimCloud, params: Params) -> dict[str, Any]:
    filters = params.filters(VOLUME_FILTERS)
    chosen = [
        v
        for v in select_ids(cloud.state.volumes, params.numbered("VolumeId"), "volume")
        if matches(
            filters,
            {
                "volume-id": lambda v=v: v.volume_id,
                "attachment.instance-id": lambda v=v: [v.attachment.instance_id] if v.attachment else [],
                "node-id": lambda v=v: v.node_id,
                "storage-id": lambda v=v: v.storage_id,
                "status": lambda v=v: v.status,
            },
        )
    ]
    shown, token = page(params, chosen)
    return {"volumeSet": [volume_item(v) for v in shown], "nextToken": token}


def _requested_size(params: Params) -> int | None:
    exact = params.integer("SizeBytes", minimum=1)
    gib = params.integer("Size", minimum=1, maximum=65536)
    return exact if exact is not None else (gib * GIB if gib is not None else None)


def create_volume(cloud: SimCloud, params: Params) -> dict[str, Any]:
    state = cloud.state
    size = _requested_size(params)
    snapshot_id = params.get("SnapshotId")
    snapshot = None
    if snapshot_id is not None:
        snapshot = state.snapshots.get(snapshot_id)
        if snapshot is None:
            raise not_found("snapshot", snapshot_id)
        if snapshot.status != "completed":
            raise incorrect_state(
                f"The snapshot '{snapshot_id}' is {snapshot.status}; wait until it is completed."
            )
        if size is not None and size < snapshot.volume_size_bytes:
            raise invalid(
                "SizeBytes", str(size), f"smaller than the snapshot ({snapshot.volume_size_bytes} bytes)"
            )
        size = size or snapshot.volume_size_bytes
    if size is None:
        raise SimApiError(
            "MissingParameter", "The request must contain the parameter Size, SizeBytes or SnapshotId"
        )
    storage_id = params.get("StorageId") or (snapshot.storage_id if snapshot else next(iter(state.storages)))
    if storage_id not in state.storages:
        raise not_found("storage", storage_id)
    node_id = params.get("NodeId") or ""
    if node_id and node_id not in state.nodes:
        raise not_found("node", node_id)
    cloud.check_space(storage_id, size)
    volume = new_volume(
        state,
        size_bytes=size,
        storage_id=storage_id,
        node_id=node_id,
        name=params.get("VolumeName", "") or "",
        status="creating",
        snapshot_id=snapshot_id or "",
    )
    if snapshot is not None:
        volume.source_instance_id = snapshot.source_instance_id
        volume.source_node_id = snapshot.source_node_id
        cloud.fill_from_snapshot(volume)
    else:
        create_sparse_file(cloud.store.volume_path(volume.volume_id), size)
        volume.transition = cloud.transition("available")
    return volume_item(volume)


def delete_volume(cloud: SimCloud, params: Params) -> dict[str, Any]:
    volume = _volume(cloud, params)
    if volume.attachment is not None:
        raise SimApiError(
            "VolumeInUse",
            f"The volume '{volume.volume_id}' is attached to {volume.attachment.instance_id}; detach it first.",
        )
    del cloud.state.volumes[volume.volume_id]
    cloud.delete_volume_files(volume.volume_id)
    return {"return": True}


def attach_volume(cloud: SimCloud, params: Params) -> dict[str, Any]:
    state = cloud.state
    volume = _volume(cloud, params)
    instance_id = params.require("InstanceId")
    device = params.require("Device")
    instance = state.instances.get(instance_id)
    if instance is None:
        raise not_found("instance", instance_id)
    if volume.attachment is not None:
        raise incorrect_state(
            f"The volume '{volume.volume_id}' is already attached to {volume.attachment.instance_id}."
        )
    if volume.status != "available":
        raise incorrect_state(f"The volume '{volume.volume_id}' is {volume.status}, not available.")
    if instance.state in ("shutting-down", "terminated"):
        raise incorrect_state(f"The instance '{instance_id}' is {instance.state}.")
    if volume.cluster_id != instance.cluster_id:
        raise invalid(
            "InstanceId", instance_id, f"the instance is not in the volume's cluster {volume.cluster_id}"
        )
    if not device.startswith("/dev/"):
        raise invalid("Device", device, "expected a device name such as /dev/vdb")
    in_use = {
        v.attachment.device
        for v in state.volumes.values()
        if v.attachment and v.attachment.instance_id == instance_id
    }
    if device in in_use:
        raise invalid("Device", device, f"the device is already in use on {instance_id}")
    volume.attachment = AttachmentRec(
        instance_id=instance_id,
        device=device,
        status="attaching",
        attach_time=time.time(),
        transition=cloud.transition("attached"),
    )
    volume.status = "in-use"
    cloud.stats.attached(instance_id, volume.source_node_id, volume.source_instance_id)
    return _attachment_item(volume, volume.attachment)


def detach_volume(cloud: SimCloud, params: Params) -> dict[str, Any]:
    state = cloud.state
    volume = _volume(cloud, params)
    attachment = volume.attachment
    if attachment is None:
        raise incorrect_state(f"The volume '{volume.volume_id}' is not attached.")
    instance_id = params.get("InstanceId")
    if instance_id is not None and instance_id != attachment.instance_id:
        raise incorrect_state(
            f"The volume '{volume.volume_id}' is attached to {attachment.instance_id}, not {instance_id}."
        )
    instance = state.instances.get(attachment.instance_id)
    if volume.is_root and instance and instance.state == "running" and not params.boolean("Force"):
        raise incorrect_state(
            f"The volume '{volume.volume_id}' is the root disk of running instance {instance.instance_id}; "
            "stop the instance first"
        )
    cloud.begin_detach(volume)
    return _attachment_item(volume, attachment)


def describe_snapshots(cloud: SimCloud, params: Params) -> dict[str, Any]:
    filters = params.filters(SNAPSHOT_FILTERS)
    chosen = [
        s
        for s in select_ids(cloud.state.snapshots, params.numbered("SnapshotId"), "snapshot")
        if matches(filters, {"volume-id": lambda s=s: s.volume_id, "status": lambda s=s: s.status})
    ]
    shown, token = page(params, chosen)
    return {"snapshotSet": [snapshot_item(s) for s in shown], "nextToken": token}


def create_snapshot(cloud: SimCloud, params: Params) -> dict[str, Any]:
    state = cloud.state
    volume = _volume(cloud, params)
    if volume.status in ("creating", "error"):
        raise incorrect_state(
            f"The volume '{volume.volume_id}' is {volume.status}; it cannot be snapshotted."
        )
    owner = state.instances.get(volume.attachment.instance_id) if volume.attachment else None
    snapshot = SnapshotRec(
        snapshot_id=state.new_id("snap"),
        volume_id=volume.volume_id,
        start_time=time.time(),
        volume_size_bytes=volume.size_bytes,
        storage_id=volume.storage_id,
        description=params.get("Description", "") or "",
        source_instance_id=owner.instance_id if owner else volume.source_instance_id,
        source_node_id=owner.node_id if owner else volume.source_node_id,
    )
    state.snapshots[snapshot.snapshot_id] = snapshot
    cloud.stats.snapshotted(volume.volume_id, owner.state if owner else "")
    cloud.take_snapshot(snapshot)
    return snapshot_item(snapshot)


def delete_snapshot(cloud: SimCloud, params: Params) -> dict[str, Any]:
    state = cloud.state
    snapshot_id = params.require("SnapshotId")
    snapshot = state.snapshots.get(snapshot_id)
    if snapshot is None:
        raise not_found("snapshot", snapshot_id)
    users = [i.image_id for i in state.images.values() if i.root_snapshot_id == snapshot_id]
    users += [
        v.volume_id for v in state.volumes.values() if v.snapshot_id == snapshot_id and v.status == "creating"
    ]
    if users:
        raise incorrect_state(f"The snapshot '{snapshot_id}' is in use by {', '.join(users)}.")
    del state.snapshots[snapshot_id]
    cloud.store.snapshot_path(snapshot_id).unlink(missing_ok=True)
    return {"return": True}


def _volume_again(cloud: SimCloud, volume_id: str) -> dict[str, Any] | None:
    volume = cloud.state.volumes.get(volume_id)
    return volume_item(volume) if volume is not None else None


def _snapshot_again(cloud: SimCloud, snapshot_id: str) -> dict[str, Any] | None:
    snapshot = cloud.state.snapshots.get(snapshot_id)
    return snapshot_item(snapshot) if snapshot is not None else None


ACTIONS: dict[str, Handler] = {
    "DescribeVolumes": describe_volumes,
    "CreateVolume": idempotent("CreateVolume", create_volume, lambda b: b["volumeId"], _volume_again),
    "DeleteVolume": delete_volume,
    "AttachVolume": attach_volume,
    "DetachVolume": detach_volume,
    "DescribeSnapshots": describe_snapshots,
    "CreateSnapshot": idempotent(
        "CreateSnapshot", create_snapshot, lambda b: b["snapshotId"], _snapshot_again
    ),
    "DeleteSnapshot": delete_snapshot,
}
