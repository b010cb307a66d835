"""DescribeInstances, Start/Stop/TerminateInstances and RunInstances."""

from __future__ import annotations

from typing import Any

from bingobackup.sim.builder import device_name, new_instance, new_volume, resolve_instance_type
from bingobackup.sim.cloud import SimCloud
from bingobackup.sim.errors import SimApiError, incorrect_state, invalid, not_found
from bingobackup.sim.idempotency import idempotent
from bingobackup.sim.layers import freeze
from bingobackup.sim.network import make_nic, subnets_of_cluster
from bingobackup.sim.query import Params, matches, page, select_ids
from bingobackup.sim.state import (
    STATE_CODES,
    ImageRec,
    InstanceRec,
    NicRec,
    NodeRec,
    SnapshotRec,
    VolumeRec,
    link_device,
)
from bingobackup.sim.types import Handler
from bingobackup.sim.xml import iso_time

INSTANCE_FILTERS = ["instance-id", "node-id", "cluster-id", "instance-state-name", "name"]


def _state(name: str) -> dict[str, Any]:
    return {"code": STATE_CODES[name], "name": name}


def instance_item(cloud: SimCloud, instance: InstanceRec) -> dict[str, Any]:
    state = cloud.state
    attached = sorted(
        (
            v
            for v in state.volumes.values()
            if v.attachment and v.attachment.instance_id == instance.instance_id
        ),
        key=lambda v: v.attachment.device if v.attachment else "",
    )
    return {
        "instanceId": instance.instance_id,
        "instanceName": instance.name,
        "imageId": instance.image_id,
        "instanceState": _state(instance.state),
        "instanceType": instance.instance_type,
        "cpu": instance.cpu,
        "memory": instance.memory_mib,
        "clusterId": instance.cluster_id,
        "hostAddress": instance.node_id,
        "storageId": instance.storage_id,
        "launchTime": iso_time(instance.launch_time),
        "platform": instance.platform,
        "osName": instance.os_name,
        "osVersion": instance.os_version,
        "architecture": instance.architecture,
        "rootDeviceName": instance.root_device_name,
        "networkInterfaceSet": [_nic_item(cloud, nic) for nic in instance.nics],
        "blockDeviceMapping": [_block_device_item(v) for v in attached if v.attachment],
        "tagSet": [{"key": k, "value": val} for k, val in instance.tags.items()],
    }


def _nic_item(cloud: SimCloud, nic: NicRec) -> dict[str, Any]:
    groups = cloud.state.security_groups
    return {
        "networkInterfaceId": nic.network_interface_id,
        "vpcId": nic.vpc_id,
        "subnetId": nic.subnet_id,
        "privateIpAddress": nic.private_ip_address,
        "macAddress": nic.mac_address,
        "groupSet": [
            {"groupId": g, "groupName": groups[g].group_name if g in groups else ""} for g in nic.group_ids
        ],
        "attachment": {"deviceIndex": nic.device_index},
    }


def _block_device_item(volume: VolumeRec) -> dict[str, Any]:
    attachment = volume.attachment
    assert attachment is not None  # only attached volumes are mapped
    return {
        "deviceName": attachment.device,
        "ebs": {
            "volumeId": volume.volume_id,
            "status": attachment.status,
            "attachTime": iso_time(attachment.attach_time),
            "deleteOnTermination": attachment.delete_on_termination,
        },
    }


def _reservation(cloud: SimCloud, instance: InstanceRec) -> dict[str, Any]:
    return {
        "reservationId": instance.reservation_id,
        "ownerId": "bingocloud",
        "instancesSet": [instance_item(cloud, instance)],
    }


def describe_instances(cloud: SimCloud, params: Params) -> dict[str, Any]:
    filters = params.filters(INSTANCE_FILTERS)
    chosen = [
        i
        for i in select_ids(cloud.state.instances, params.numbered("InstanceId"), "instance")
        if matches(
            filters,
            {
                "instance-id": lambda i=i: i.instance_id,
                "node-id": lambda i=i: i.node_id,
                "cluster-id": lambda i=i: i.cluster_id,
                "instance-state-name": lambda i=i: i.state,
                "name": lambda i=i: i.name,
            },
        )
    ]
    shown, token = page(params, chosen)
    return {"reservationSet": [_reservation(cloud, i) for i in shown], "nextToken": token}


def _instances(cloud: SimCloud, params: Params) -> list[InstanceRec]:
    ids = params.numbered("InstanceId")
    if not ids:
        raise SimApiError("MissingParameter", "The request must contain the parameter InstanceId.1")
    return select_ids(cloud.state.instances, ids, "instance")


def _change(instance: InstanceRec, previous: str) -> dict[str, Any]:
    return {
        "instanceId": instance.instance_id,
        "currentState": _state(instance.state),
        "previousState": _state(previous),
    }


def stop_instances(cloud: SimCloud, params: Params) -> dict[str, Any]:
    changes = []
    for instance in _instances(cloud, params):
        previous = instance.state
        if previous in ("pending", "running"):
            instance.state, instance.transition = "stopping", cloud.transition("stopped")
        elif previous == "terminated":
            raise incorrect_state(
                f"The instance '{instance.instance_id}' is terminated and cannot be stopped."
            )
        changes.append(_change(instance, previous))
    return {"instancesSet": changes}


def start_instances(cloud: SimCloud, params: Params) -> dict[str, Any]:
    changes = []
    for instance in _instances(cloud, params):
        previous = instance.state
        if previous == "stopped":
            instance.state, instance.transition = "pending", cloud.transition("running")
        elif previous not in ("pending", "running"):
            raise incorrect_state(
                f"The instance '{instance.instance_id}' is {previous}; only a stopped instance can be started."
            )
        changes.append(_change(instance, previous))
    return {"instancesSet": changes}


def terminate_instances(cloud: SimCloud, params: Params) -> dict[str, Any]:
    changes = []
    for instance in _instances(cloud, params):
        previous = instance.state
        if previous not in ("shutting-down", "terminated"):
            instance.state, instance.transition = "shutting-down", cloud.transition("terminated")
        changes.append(_change(instance, previous))
    return {"instancesSet": changes}


def _nics(cloud: SimCloud, params: Params, cluster_id: str) -> list[NicRec]:
    state = cloud.state
    nics: list[NicRec] = []
    groups = params.groups("NetworkInterface")
    if not groups:
        subnets = subnets_of_cluster(state, cluster_id)
        if not subnets:
            raise SimApiError(
                "MissingParameter", "The request must contain the parameter NetworkInterface.1.SubnetId"
            )
        return [make_nic(state, device_index=0, subnet_id=subnets[0])]
    for n, nic in groups.items():
        subnet_id = nic.require("SubnetId")
        subnet = state.subnets.get(subnet_id)
        if subnet is None:
            raise not_found("subnet", subnet_id)
        if state.vpcs[subnet.vpc_id].cluster_id != cluster_id:
            raise invalid(
                f"NetworkInterface.{n}.SubnetId", subnet_id, f"the subnet is not in cluster {cluster_id}"
            )
        index = nic.integer("DeviceIndex", minimum=0, maximum=15)
        nics.append(
            make_nic(
                state,
                device_index=len(nics) if index is None else index,
                subnet_id=subnet_id,
                ip=nic.get("PrivateIpAddress"),
                mac=nic.get("MacAddress"),
                group_ids=nic.numbered("SecurityGroupId"),
                reserved=nics,
            )
        )
    return sorted(nics, key=lambda n: n.device_index)


def _image_and_root_snapshot(cloud: SimCloud, image_id: str) -> tuple[ImageRec, SnapshotRec]:
    """The image to launch and its root snapshot, which must be complete."""
    image = cloud.state.images.get(image_id)
    if image is None:
        raise not_found("image", image_id)
    snapshot = cloud.state.snapshots.get(image.root_snapshot_id)
    if snapshot is None or snapshot.status != "completed":
        raise incorrect_state(f"The image '{image_id}' has no completed root snapshot.")
    return image, snapshot


def _placement(cloud: SimCloud, params: Params, storage_id: str) -> tuple[str, NodeRec]:
    """The node to run on: the one asked for, or the storage's cluster's first; it must be in
    the storage's cluster."""
    state = cloud.state
    storage = state.storages.get(storage_id)
    if storage is None:
        raise not_found("storage", storage_id)
    node_id = params.get("Placement.HostId")
    if node_id is None:
        node_id = next(n.node_id for n in state.nodes.values() if n.cluster_id == storage.cluster_id)
    node = state.nodes.get(node_id)
    if node is None:
        raise not_found("node", node_id)
    if node.cluster_id != storage.cluster_id:
        raise invalid(
            "Placement.HostId", node_id, f"the node is not in the storage's cluster {storage.cluster_id}"
        )
    return node_id, node


def run_instances(cloud: SimCloud, params: Params) -> dict[str, Any]:
    """Launch one VM whose root volume is the image's snapshot, shared copy-on-write."""
    state = cloud.state
    image_id = params.require("ImageId")
    for name in ("MinCount", "MaxCount"):
        if params.integer(name, minimum=1, maximum=1) is None:
            raise SimApiError("MissingParameter", f"The request must contain the parameter {name}")
    image, snapshot = _image_and_root_snapshot(cloud, image_id)
    storage_id = params.get("StorageId") or snapshot.storage_id
    node_id, node = _placement(cloud, params, storage_id)
    type_name, cpu, memory = resolve_instance_type(
        state,
        params.get("InstanceType"),
        params.integer("Cpu", minimum=1, maximum=256),
        params.integer("Memory", minimum=64, maximum=4 << 20),
    )
    nics = _nics(cloud, params, node.cluster_id)
    cloud.check_space(storage_id, snapshot.volume_size_bytes)
    source_vm = state.volumes.get(snapshot.volume_id)
    source_instance = (
        state.instances.get(source_vm.attachment.instance_id) if source_vm and source_vm.attachment else None
    )
    instance = new_instance(
        state,
        name=params.get("InstanceName") or image.name,
        node_id=node_id,
        storage_id=storage_id,
        instance_type=type_name,
        cpu=cpu,
        memory_mib=memory,
        nics=nics,
        image_id=image_id,
        initial_state="pending",
        os_name=source_instance.os_name if source_instance else "Ubuntu",
        os_version=source_instance.os_version if source_instance else "20.04",
        platform=source_instance.platform if source_instance else "linux",
    )
    instance.root_device_name = image.root_device_name or device_name(0)
    instance.transition = cloud.transition("running")
    root = new_volume(
        state,
        size_bytes=snapshot.volume_size_bytes,
        storage_id=storage_id,
        node_id=node_id,
        name=params.get("RootVolumeName") or f"{instance.name}-root",
        is_root=True,
        snapshot_id=snapshot.snapshot_id,
        attach_to=instance.instance_id,
        device=instance.root_device_name,
        volume_format=source_vm.format if source_vm else "qcow2",
    )
    freeze(cloud.store.snapshot_path(snapshot.snapshot_id), cloud.store.volume_path(root.volume_id))
    link_device(cloud.store, root)
    return _reservation(cloud, instance)


def _launched_again(cloud: SimCloud, instance_id: str) -> dict[str, Any] | None:
    # A terminated instance is still described, as in EC2: the repeat sees it terminated.
    instance = cloud.state.instances.get(instance_id)
    return _reservation(cloud, instance) if instance is not None else None


ACTIONS: dict[str, Handler] = {
    "DescribeInstances": describe_instances,
    "StopInstances": stop_instances,
    "StartInstances": start_instances,
    "TerminateInstances": terminate_instances,
    "RunInstances": idempotent(
        "RunInstances", run_instances, lambda b: b["instancesSet"][0]["instanceId"], _launched_again
    ),
}
