"""Typed results of the BingoCloud API.

These are what `BingoCloudClient` returns; the XML element each field comes from is
listed in `docs/cloud-api.md`. Sizes are bytes, memory is MiB, times are aware UTC
datetimes. IDs are opaque strings (`i-49ADD723`, `vol-…`): never parse them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CloudModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Cluster(CloudModel):
    cluster_id: str
    name: str
    status: str = "available"
    description: str = ""


class Node(CloudModel):
    node_id: str  # BingoCloud writes nodes as `name@ip`
    cluster_id: str
    status: Literal["available", "maintain"] | str = "available"
    cpu_total: int = 0
    cpu_used: int = 0
    memory_total_mib: int = 0
    memory_used_mib: int = 0
    disk_total_bytes: int = 0
    disk_used_bytes: int = 0

    @property
    def name(self) -> str:
        return self.node_id.split("@", 1)[0]

    @property
    def ip(self) -> str:
        return self.node_id.split("@", 1)[1] if "@" in self.node_id else ""


class Storage(CloudModel):
    """A datastore (后端存储) on which volumes live."""

    storage_id: str
    name: str
    type: str = "local"
    cluster_id: str
    space_max_bytes: int
    space_used_bytes: int
    status: str = "available"

    @property
    def space_free_bytes(self) -> int:
        return max(0, self.space_max_bytes - self.space_used_bytes)

    @property
    def free_percent(self) -> float:
        return 100.0 * self.space_free_bytes / self.space_max_bytes if self.space_max_bytes else 0.0


class InstanceState(CloudModel):
    code: int
    name: Literal["pending", "running", "stopping", "stopped", "shutting-down", "terminated"]


class SecurityGroupRef(CloudModel):
    group_id: str
    group_name: str = ""


class NetworkInterface(CloudModel):
    network_interface_id: str
    device_index: int
    vpc_id: str
    subnet_id: str
    private_ip_address: str
    mac_address: str
    security_groups: tuple[SecurityGroupRef, ...] = ()

    @property
    def primary(self) -> bool:
        return self.device_index == 0


class BlockDeviceMapping(CloudModel):
    device_name: str
    volume_id: str
    status: str = "attached"
    attach_time: datetime | None = None
    delete_on_termination: bool = False


class Instance(CloudModel):
    instance_id: str
    name: str
    image_id: str = ""
    state: InstanceState
    instance_type: str
    cpu: int
    memory_mib: int
    cluster_id: str
    node_id: str  # hostAddress: the node the VM runs on
    storage_id: str  # storage of the system disk
    launch_time: datetime | None = None
    platform: str = "linux"  # linux | windows
    os_name: str = ""  # e.g. "Ubuntu"
    os_version: str = ""  # e.g. "20.04"
    architecture: str = "x86_64"
    root_device_name: str = "/dev/vda"
    network_interfaces: tuple[NetworkInterface, ...] = ()
    block_devices: tuple[BlockDeviceMapping, ...] = ()
    tags: dict[str, str] = Field(default_factory=dict)


class VolumeAttachment(CloudModel):
    volume_id: str
    instance_id: str
    device: str
    status: Literal["attaching", "attached", "detaching", "detached"] | str
    attach_time: datetime | None = None


class Volume(CloudModel):
    volume_id: str
    name: str = ""
    size_bytes: int
    snapshot_id: str = ""
    status: Literal["creating", "available", "in-use", "deleting", "deleted", "error"] | str
    create_time: datetime | None = None
    cluster_id: str = ""
    node_id: str = ""
    storage_id: str = ""
    is_root: bool = False
    format: Literal["raw", "qcow2"] | str = "qcow2"
    serial: str = ""  # virtio serial the guest sees: /dev/disk/by-id/virtio-<serial>
    attachments: tuple[VolumeAttachment, ...] = ()

    @property
    def size_gib(self) -> int:
        return -(-self.size_bytes // (1 << 30))


class Snapshot(CloudModel):
    snapshot_id: str
    volume_id: str
    status: Literal["pending", "completed", "error"] | str
    start_time: datetime | None = None
    progress: str = ""
    volume_size_bytes: int = 0
    storage_id: str = ""
    description: str = ""


class Image(CloudModel):
    image_id: str
    name: str = ""
    state: str = "available"
    root_device_name: str = "/dev/vda"
    root_snapshot_id: str = ""
    description: str = ""
    platform: str = ""  # linux | windows, when the cloud says
    os_name: str = ""  # BingoCloud's free text, e.g. "Ubuntu 20.04 64bit"
    architecture: str = ""


class Vpc(CloudModel):
    vpc_id: str
    name: str = ""
    cidr_block: str
    state: str = "available"
    cluster_id: str = ""


class Subnet(CloudModel):
    subnet_id: str
    vpc_id: str
    cidr_block: str
    state: str = "available"
    available_ip_address_count: int = 0
    name: str = ""


class SecurityGroup(CloudModel):
    group_id: str
    group_name: str
    description: str = ""
    vpc_id: str = ""


class InstanceType(CloudModel):
    instance_type: str
    cpu: int
    memory_mib: int


class StateChange(CloudModel):
    """One item of Start/Stop/TerminateInstances."""

    instance_id: str
    current_state: InstanceState
    previous_state: InstanceState


class NicSpec(CloudModel):
    """A NIC for RunInstances: one `NetworkInterface.N.*` group."""

    device_index: int
    subnet_id: str
    private_ip_address: str | None = None  # None: the cloud assigns one
    mac_address: str | None = None  # None: the cloud assigns one (BingoCloud extension)
    security_group_ids: tuple[str, ...] = ()
