"""XML items of docs/cloud-api.md → the typed models of `bingobackup.cloud.models`.

Absent and empty elements are left out so the model's default applies; an item missing a required
element, or holding a value that is no number or time, becomes a `CloudError` naming the
model, instead of a bare pydantic trace or ValueError. Where the public BingoCloud client
(yunionio/cloudmux) reads another element name than ours, both are read: see
docs/cloud-api.md, "Where each field comes from".
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import ValidationError

from bingobackup.cloud._xml import (
    GIB,
    child,
    first_text,
    gib_or_bytes,
    items,
    text,
    to_bool,
    to_datetime,
    to_int,
)
from bingobackup.cloud.errors import CloudResponseError
from bingobackup.cloud.models import (
    BlockDeviceMapping,
    CloudModel,
    Cluster,
    Image,
    Instance,
    InstanceState,
    InstanceType,
    NetworkInterface,
    Node,
    SecurityGroup,
    SecurityGroupRef,
    Snapshot,
    StateChange,
    Storage,
    Subnet,
    Volume,
    VolumeAttachment,
    Vpc,
)

M = TypeVar("M", bound=CloudModel)


def build(model: type[M], fields: dict[str, Any]) -> M:
    try:
        # Empty is absent (cloudmux bingo.go drops "" values too): the default applies.
        return model.model_validate({k: v for k, v in fields.items() if v is not None and v != ""})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise CloudResponseError(
            f"BingoCloud sent a {model.__name__} the client cannot read ({problems})"
        ) from None


def _reads(model: type[M]) -> Callable[[Callable[[ET.Element], M]], Callable[[ET.Element], M]]:
    """A parser of one `model` item whose unreadable values raise `CloudError`, never ValueError."""

    def wrap(parse_item: Callable[[ET.Element], M]) -> Callable[[ET.Element], M]:
        @functools.wraps(parse_item)
        def parse_checked(item: ET.Element) -> M:
            try:
                return parse_item(item)
            except ValueError as exc:
                raise CloudResponseError(
                    f"BingoCloud sent a {model.__name__} the client cannot read ({exc})"
                ) from None

        return parse_checked

    return wrap


@_reads(Cluster)
def cluster(item: ET.Element) -> Cluster:
    return build(
        Cluster,
        {
            "cluster_id": text(item, "clusterId"),
            "name": text(item, "clusterName"),
            "status": text(item, "status"),
            "description": text(item, "description"),
        },
    )


@_reads(Node)
def node(item: ET.Element) -> Node:
    return build(
        Node,
        {
            "node_id": text(item, "nodeId"),
            "cluster_id": text(item, "clusterId"),
            "status": text(item, "status"),
            # cloudmux node.go reads CpuMax/MemoryMax/DiskMax where we expect *Total.
            "cpu_total": to_int(first_text(item, "cpuTotal", "cpuMax")),
            "cpu_used": to_int(text(item, "cpuUsed")),
            "memory_total_mib": to_int(first_text(item, "memoryTotal", "memoryMax")),
            "memory_used_mib": to_int(text(item, "memoryUsed")),
            "disk_total_bytes": to_int(first_text(item, "diskTotal", "diskMax")),
            "disk_used_bytes": to_int(text(item, "diskUsed")),
        },
    )


def _space(value: int | None, space_max: int | None) -> int | None:
    # We read spaceMax/spaceUsed as bytes; cloudmux storage.go reads them as GiB
    # (GetCapacityMB = SpaceMax * 1024). No datastore is under 1 MiB, so a spaceMax that small
    # is taken as GiB, and spaceUsed with it.
    if value is None or space_max is None or space_max >= 1 << 20:
        return value
    return value * GIB


@_reads(Storage)
def storage(item: ET.Element) -> Storage:
    space_max = to_int(text(item, "spaceMax"))
    return build(
        Storage,
        {
            "storage_id": text(item, "storageId"),
            "name": text(item, "storageName"),
            "type": first_text(item, "type", "storageType"),
            "cluster_id": text(item, "clusterId"),
            "space_max_bytes": _space(space_max, space_max),
            "space_used_bytes": _space(to_int(text(item, "spaceUsed")), space_max),
            "status": text(item, "status"),
        },
    )


@_reads(InstanceType)
def instance_type(item: ET.Element) -> InstanceType:
    return build(
        InstanceType,
        {
            "instance_type": text(item, "instanceType"),
            "cpu": to_int(text(item, "cpu")),
            "memory_mib": to_int(text(item, "memory")),
        },
    )


def _state(element: ET.Element | None) -> InstanceState | None:
    if element is None:
        return None
    return build(InstanceState, {"code": to_int(text(element, "code")), "name": text(element, "name")})


def _network_interface(item: ET.Element) -> NetworkInterface:
    groups = tuple(
        build(SecurityGroupRef, {"group_id": text(g, "groupId"), "group_name": text(g, "groupName")})
        for g in items(item, "groupSet")
    )
    return build(
        NetworkInterface,
        {
            "network_interface_id": text(item, "networkInterfaceId"),
            "device_index": to_int(text(item, "attachment/deviceIndex")),
            "vpc_id": text(item, "vpcId"),
            "subnet_id": text(item, "subnetId"),
            "private_ip_address": text(item, "privateIpAddress"),
            "mac_address": text(item, "macAddress"),
            "security_groups": groups,
        },
    )


def _block_device(item: ET.Element) -> BlockDeviceMapping:
    return build(
        BlockDeviceMapping,
        {
            "device_name": text(item, "deviceName"),
            "volume_id": text(item, "ebs/volumeId"),
            "status": text(item, "ebs/status"),
            "attach_time": to_datetime(text(item, "ebs/attachTime")),
            "delete_on_termination": to_bool(text(item, "ebs/deleteOnTermination")),
        },
    )


@_reads(Instance)
def instance(item: ET.Element) -> Instance:
    return build(
        Instance,
        {
            "instance_id": text(item, "instanceId"),
            "name": text(item, "instanceName"),
            "image_id": text(item, "imageId"),
            "state": _state(child(item, "instanceState")),
            "instance_type": text(item, "instanceType"),
            # cloudmux instance.go reads vmtype_cpu/vmtype_mem, and no clusterId: its zones
            # are the clusters (cluster.go), so the placement's zone stands in for it.
            "cpu": to_int(first_text(item, "cpu", "vmtype_cpu")),
            "memory_mib": to_int(first_text(item, "memory", "vmtype_mem")),
            "cluster_id": first_text(item, "clusterId", "placement/availabilityZone"),
            "node_id": text(item, "hostAddress"),
            "storage_id": text(item, "storageId"),
            "launch_time": to_datetime(text(item, "launchTime")),
            "platform": text(item, "platform") or None,
            "os_name": text(item, "osName"),
            "os_version": text(item, "osVersion"),
            "architecture": text(item, "architecture") or None,
            "root_device_name": text(item, "rootDeviceName") or None,
            "network_interfaces": tuple(_network_interface(n) for n in items(item, "networkInterfaceSet")),
            "block_devices": tuple(_block_device(b) for b in items(item, "blockDeviceMapping")),
            "tags": {text(t, "key") or "": text(t, "value") or "" for t in items(item, "tagSet")},
        },
    )


def instances_of_reservations(root: ET.Element) -> list[Instance]:
    return [instance(i) for r in items(root, "reservationSet") for i in items(r, "instancesSet")]


@_reads(VolumeAttachment)
def attachment(item: ET.Element) -> VolumeAttachment:
    return build(
        VolumeAttachment,
        {
            "volume_id": text(item, "volumeId"),
            "instance_id": text(item, "instanceId"),
            "device": text(item, "device"),
            "status": text(item, "status"),
            "attach_time": to_datetime(text(item, "attachTime")),
        },
    )


@_reads(Volume)
def volume(item: ET.Element) -> Volume:
    return build(
        Volume,
        {
            "volume_id": text(item, "volumeId"),
            "name": text(item, "volumeName"),
            "size_bytes": gib_or_bytes(text(item, "size"), text(item, "sizeBytes")),
            "snapshot_id": text(item, "snapshotId"),
            "status": text(item, "status"),
            "create_time": to_datetime(text(item, "createTime")),
            "cluster_id": text(item, "clusterId"),
            "node_id": text(item, "nodeId"),
            "storage_id": text(item, "storageId"),
            "is_root": to_bool(text(item, "isRoot")),
            "format": text(item, "format") or None,
            "serial": text(item, "serial"),
            "attachments": tuple(attachment(a) for a in items(item, "attachmentSet")),
        },
    )


@_reads(Snapshot)
def snapshot(item: ET.Element) -> Snapshot:
    return build(
        Snapshot,
        {
            "snapshot_id": text(item, "snapshotId"),
            "volume_id": text(item, "volumeId"),
            "status": text(item, "status"),
            "start_time": to_datetime(text(item, "startTime")),
            "progress": text(item, "progress"),
            "volume_size_bytes": gib_or_bytes(text(item, "volumeSize"), text(item, "volumeSizeBytes")),
            "storage_id": text(item, "storageId"),
            "description": text(item, "description"),
        },
    )


@_reads(Image)
def image(item: ET.Element) -> Image:
    root_device = text(item, "rootDeviceName") or None
    mappings = items(item, "blockDeviceMapping")
    root_mapping = next((m for m in mappings if text(m, "deviceName") == root_device), None)
    if root_mapping is None and mappings:
        root_mapping = mappings[0]
    return build(
        Image,
        {
            "image_id": text(item, "imageId"),
            "name": text(item, "name"),
            "state": text(item, "imageState") or None,
            "root_device_name": root_device,
            "root_snapshot_id": text(root_mapping, "ebs/snapshotId"),
            "description": text(item, "description"),
            "platform": text(item, "platform") or None,
            "os_name": text(item, "osName"),
            "architecture": text(item, "architecture"),
        },
    )


@_reads(Vpc)
def vpc(item: ET.Element) -> Vpc:
    return build(
        Vpc,
        {
            "vpc_id": text(item, "vpcId"),
            "name": text(item, "vpcName"),
            "cidr_block": text(item, "cidrBlock"),
            "state": text(item, "state") or None,
            "cluster_id": text(item, "clusterId"),
        },
    )


@_reads(Subnet)
def subnet(item: ET.Element) -> Subnet:
    return build(
        Subnet,
        {
            "subnet_id": text(item, "subnetId"),
            "name": text(item, "subnetName"),
            "vpc_id": text(item, "vpcId"),
            "cidr_block": text(item, "cidrBlock"),
            "state": text(item, "state") or None,
            "available_ip_address_count": to_int(text(item, "availableIpAddressCount")),
        },
    )


@_reads(SecurityGroup)
def security_group(item: ET.Element) -> SecurityGroup:
    return build(
        SecurityGroup,
        {
            "group_id": text(item, "groupId"),
            "group_name": text(item, "groupName"),
            "description": text(item, "groupDescription"),
            "vpc_id": text(item, "vpcId"),
        },
    )


@_reads(StateChange)
def state_change(item: ET.Element) -> StateChange:
    return build(
        StateChange,
        {
            "instance_id": text(item, "instanceId"),
            "current_state": _state(child(item, "currentState")),
            "previous_state": _state(child(item, "previousState")),
        },
    )
