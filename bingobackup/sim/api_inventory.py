"""Clusters, nodes, storages, instance types, networks and images."""

from __future__ import annotations

import ipaddress
from typing import Any

from bingobackup.sim.cloud import SimCloud
from bingobackup.sim.errors import SimApiError, incorrect_state, not_found
from bingobackup.sim.layers import allocated_once
from bingobackup.sim.network import used_ips
from bingobackup.sim.query import Params, matches, page, select_ids
from bingobackup.sim.state import ImageRec
from bingobackup.sim.types import Handler


def _paged(params: Params, set_name: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    shown, token = page(params, items)
    return {set_name: shown, "nextToken": token}


def describe_clusters(cloud: SimCloud, params: Params) -> dict[str, Any]:
    clusters = select_ids(cloud.state.clusters, params.numbered("ClusterId"), "cluster")
    items = [
        {"clusterId": c.cluster_id, "clusterName": c.name, "status": c.status, "description": c.description}
        for c in clusters
    ]
    return _paged(params, "clusterSet", items)


def describe_nodes(cloud: SimCloud, params: Params) -> dict[str, Any]:
    state = cloud.state
    filters = params.filters(["cluster-id"])
    nodes = [
        n
        for n in select_ids(state.nodes, params.numbered("NodeId"), "node")
        if matches(filters, {"cluster-id": lambda n=n: n.cluster_id})
    ]
    items = []
    for node in nodes:
        running = [
            i
            for i in state.instances.values()
            if i.node_id == node.node_id and i.state in ("pending", "running")
        ]
        disk_used = allocated_once(
            cloud.store.volume_path(v.volume_id) for v in state.volumes.values() if v.node_id == node.node_id
        )
        items.append(
            {
                "nodeId": node.node_id,
                "clusterId": node.cluster_id,
                "status": node.status,
                "cpuTotal": node.cpu_total,
                "cpuUsed": sum(i.cpu for i in running),
                "memoryTotal": node.memory_total_mib,
                "memoryUsed": sum(i.memory_mib for i in running),
                "diskTotal": node.disk_total_bytes,
                "diskUsed": disk_used,
            }
        )
    return _paged(params, "nodeSet", items)


def describe_storages(cloud: SimCloud, params: Params) -> dict[str, Any]:
    filters = params.filters(["cluster-id"])
    storages = [
        s
        for s in select_ids(cloud.state.storages, params.numbered("StorageId"), "storage")
        if matches(filters, {"cluster-id": lambda s=s: s.cluster_id})
    ]
    items = [
        {
            "storageId": s.storage_id,
            "storageName": s.name,
            "type": s.type,
            "clusterId": s.cluster_id,
            "spaceMax": s.space_max,
            "spaceUsed": cloud.storage_used(s.storage_id),
            "status": s.status,
        }
        for s in storages
    ]
    return _paged(params, "storageSet", items)


def describe_instance_types(cloud: SimCloud, params: Params) -> dict[str, Any]:
    wanted = params.numbered("InstanceType")
    types = cloud.state.instance_types
    missing = [t for t in wanted if t not in types]
    if missing:
        raise SimApiError("InvalidInstanceType", f"The instance type '{missing[0]}' does not exist.")
    items = [
        {"instanceType": t.instance_type, "cpu": t.cpu, "memory": t.memory_mib}
        for t in types.values()
        if not wanted or t.instance_type in wanted
    ]
    return _paged(params, "instanceTypeSet", items)


def describe_vpcs(cloud: SimCloud, params: Params) -> dict[str, Any]:
    vpcs = select_ids(cloud.state.vpcs, params.numbered("VpcId"), "vpc")
    items = [
        {
            "vpcId": v.vpc_id,
            "vpcName": v.name,
            "cidrBlock": v.cidr_block,
            "state": "available",
            "clusterId": v.cluster_id,
        }
        for v in vpcs
    ]
    return _paged(params, "vpcSet", items)


def describe_subnets(cloud: SimCloud, params: Params) -> dict[str, Any]:
    filters = params.filters(["vpc-id"])
    taken = used_ips(cloud.state)
    items = []
    for s in select_ids(cloud.state.subnets, params.numbered("SubnetId"), "subnet"):
        if not matches(filters, {"vpc-id": lambda s=s: s.vpc_id}):
            continue
        network = ipaddress.ip_network(s.cidr_block)
        in_use = sum(1 for ip in taken if ipaddress.ip_address(ip) in network)
        items.append(
            {
                "subnetId": s.subnet_id,
                "subnetName": s.name,
                "vpcId": s.vpc_id,
                "cidrBlock": s.cidr_block,
                "state": "available",
                # network and broadcast addresses and the gateway are not assignable
                "availableIpAddressCount": max(0, network.num_addresses - 3 - in_use),
            }
        )
    return _paged(params, "subnetSet", items)


def describe_security_groups(cloud: SimCloud, params: Params) -> dict[str, Any]:
    filters = params.filters(["vpc-id"])
    items = [
        {
            "groupId": g.group_id,
            "groupName": g.group_name,
            "groupDescription": g.description,
            "vpcId": g.vpc_id,
        }
        for g in select_ids(cloud.state.security_groups, params.numbered("GroupId"), "group")
        if matches(filters, {"vpc-id": lambda g=g: g.vpc_id})
    ]
    return _paged(params, "securityGroupInfo", items)


def _image_item(image: ImageRec) -> dict[str, Any]:
    return {
        "imageId": image.image_id,
        "name": image.name,
        "imageState": image.state,
        "rootDeviceName": image.root_device_name,
        "blockDeviceMapping": [
            {"deviceName": image.root_device_name, "ebs": {"snapshotId": image.root_snapshot_id}}
        ],
        "description": image.description,
    }


def describe_images(cloud: SimCloud, params: Params) -> dict[str, Any]:
    images = select_ids(cloud.state.images, params.numbered("ImageId"), "image")
    return _paged(params, "imagesSet", [_image_item(i) for i in images])


def register_image(cloud: SimCloud, params: Params) -> dict[str, Any]:
    state = cloud.state
    name = params.require("Name")
    # As in EC2, an image name is unique: it is what makes RegisterImage safe to retry.
    taken = next((i.image_id for i in state.images.values() if i.name == name), None)
    if taken is not None:
        raise SimApiError("InvalidAMIName.Duplicate", f"AMI name {name} is already in use by AMI {taken}.")
    root_device = params.get("RootDeviceName", "/dev/vda") or "/dev/vda"
    mappings = params.groups("BlockDeviceMapping")
    snapshot_id = next(
        (
            m.get("Ebs.SnapshotId")
            for m in mappings.values()
            if m.get("DeviceName", root_device) == root_device
        ),
        None,
    )
    if snapshot_id is None:
        snapshot_id = params.require("BlockDeviceMapping.1.Ebs.SnapshotId")
    snapshot = state.snapshots.get(snapshot_id)
    if snapshot is None:
        raise not_found("snapshot", snapshot_id)
    if snapshot.status != "completed":
        raise incorrect_state(
            f"The snapshot '{snapshot_id}' is {snapshot.status}; wait until it is completed."
        )
    image = ImageRec(
        image_id=state.new_id("ami"),
        name=name,
        root_device_name=root_device,
        root_snapshot_id=snapshot_id,
        description=params.get("Description", "") or "",
    )
    state.images[image.image_id] = image
    return {"imageId": image.image_id}


def deregister_image(cloud: SimCloud, params: Params) -> dict[str, Any]:
    image_id = params.require("ImageId")
    if cloud.state.images.pop(image_id, None) is None:
        raise not_found("image", image_id)
    return {"return": True}


ACTIONS: dict[str, Handler] = {
    "DescribeClusters": describe_clusters,
    "DescribeNodes": describe_nodes,
    "DescribeStorages": describe_storages,
    "DescribeInstanceTypes": describe_instance_types,
    "DescribeVpcs": describe_vpcs,
    "DescribeSubnets": describe_subnets,
    "DescribeSecurityGroups": describe_security_groups,
    "DescribeImages": describe_images,
    "RegisterImage": register_image,
    "DeregisterImage": deregister_image,
}
MUTATING = {"RegisterImage", "DeregisterImage"}
