"""The simulated cloud's state: pydantic records, persisted as one JSON file.

`STATE/state.json` holds every record; volume and snapshot bytes live next to it as sparse
files, shared copy-on-write by hard link (layers.py). Writes are atomic (temp file, fsync,
rename) so a crash never leaves half a state. One re-entrant lock guards the records; every
API call, change made through the admin endpoint and transition takes it.
"""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from bingobackup.files import replace_file

STATE_FILE = "state.json"
SCHEMA_VERSION = 1


class Record(BaseModel):
    """A stored record: mutable, validated when the state file is loaded."""


class ClusterRec(Record):
    cluster_id: str
    name: str
    status: str = "available"
    description: str = ""


class NodeRec(Record):
    node_id: str  # name@ip
    cluster_id: str
    status: str = "available"
    cpu_total: int = 32
    memory_total_mib: int = 131072
    disk_total_bytes: int = 4 << 40


class StorageRec(Record):
    storage_id: str
    name: str
    type: str = "local"
    cluster_id: str
    space_max: int
    reserved_used: int = 0  # space taken by things outside the simulator's files
    status: str = "available"


class InstanceTypeRec(Record):
    instance_type: str
    cpu: int
    memory_mib: int


class VpcRec(Record):
    vpc_id: str
    name: str
    cidr_block: str
    cluster_id: str


class SubnetRec(Record):
    subnet_id: str
    name: str
    vpc_id: str
    cidr_block: str


class SecurityGroupRec(Record):
    group_id: str
    group_name: str
    description: str = ""
    vpc_id: str


class NicRec(Record):
    network_interface_id: str
    device_index: int
    vpc_id: str
    subnet_id: str
    private_ip_address: str
    mac_address: str
    group_ids: list[str] = Field(default_factory=list)


InstanceStateName = Literal["pending", "running", "shutting-down", "terminated", "stopping", "stopped"]
STATE_CODES: dict[str, int] = {
    "pending": 0,
    "running": 16,
    "shutting-down": 32,
    "terminated": 48,
    "stopping": 64,
    "stopped": 80,
}


class Transition(Record):
    """`to` becomes the status once time.time() reaches `due`."""

    to: str
    due: float


class InstanceRec(Record):
    instance_id: str
    reservation_id: str
    name: str
    image_id: str = ""
    state: InstanceStateName = "running"
    transition: Transition | None = None
    instance_type: str
    cpu: int
    memory_mib: int
    cluster_id: str
    node_id: str
    storage_id: str
    launch_time: float
    platform: str = "linux"
    os_name: str = "Ubuntu"
    os_version: str = "20.04"
    architecture: str = "x86_64"
    root_device_name: str = "/dev/vda"
    nics: list[NicRec] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)


class AttachmentRec(Record):
    instance_id: str
    device: str
    status: Literal["attaching", "attached", "detaching"] = "attached"
    attach_time: float
    delete_on_termination: bool = False
    transition: Transition | None = None  # attaching → attached, detaching → detached (removed)


class VolumeRec(Record):
    volume_id: str
    name: str = ""
    size_bytes: int
    snapshot_id: str = ""
    status: str = "available"  # creating | available | in-use | error (in-use derives from attachment)
    transition: Transition | None = None
    create_time: float
    cluster_id: str
    node_id: str = ""
    storage_id: str
    is_root: bool = False
    format: str = "qcow2"
    attachment: AttachmentRec | None = None
    # Where the bytes came from, kept even when the source is deleted (for the stats).
    source_instance_id: str = ""
    source_node_id: str = ""

    @property
    def serial(self) -> str:
        return self.volume_id


class SnapshotRec(Record):
    snapshot_id: str
    volume_id: str
    status: Literal["pending", "completed", "error"] = "pending"
    transition: Transition | None = None  # pending → completed or error
    start_time: float
    volume_size_bytes: int
    storage_id: str
    description: str = ""
    source_instance_id: str = ""
    source_node_id: str = ""


class ImageRec(Record):
    image_id: str
    name: str
    state: str = "available"
    root_device_name: str = "/dev/vda"
    root_snapshot_id: str
    description: str = ""


class ClientTokenRec(Record):
    """A create call made with a `ClientToken`: a repeat returns `resource_id` again."""

    action: str
    fingerprint: str  # digest of the request's parameters (see idempotency.py)
    resource_id: str
    created: float


class SimState(Record):
    schema_version: int = SCHEMA_VERSION
    clusters: dict[str, ClusterRec] = Field(default_factory=dict)
    nodes: dict[str, NodeRec] = Field(default_factory=dict)
    storages: dict[str, StorageRec] = Field(default_factory=dict)
    instance_types: dict[str, InstanceTypeRec] = Field(default_factory=dict)
    vpcs: dict[str, VpcRec] = Field(default_factory=dict)
    subnets: dict[str, SubnetRec] = Field(default_factory=dict)
    security_groups: dict[str, SecurityGroupRec] = Field(default_factory=dict)
    instances: dict[str, InstanceRec] = Field(default_factory=dict)
    volumes: dict[str, VolumeRec] = Field(default_factory=dict)
    snapshots: dict[str, SnapshotRec] = Field(default_factory=dict)
    images: dict[str, ImageRec] = Field(default_factory=dict)
    client_tokens: dict[str, ClientTokenRec] = Field(default_factory=dict, description="ACTION/TOKEN →")

    def new_id(self, prefix: str) -> str:
        """An unused id such as `vol-3F9A12BC` (opaque to clients)."""
        taken = {
            *self.instances,
            *self.volumes,
            *self.snapshots,
            *self.images,
            *self.vpcs,
            *self.subnets,
            *self.security_groups,
        }
        while True:
            candidate = f"{prefix}-{secrets.token_hex(4).upper()}"
            if candidate not in taken:
                return candidate

    def cluster_by_name_or_id(self, name_or_id: str) -> ClusterRec | None:
        if name_or_id in self.clusters:
            return self.clusters[name_or_id]
        return next((c for c in self.clusters.values() if c.name == name_or_id), None)


class StateStore:
    """The state directory: records in memory, saved atomically, plus the volume files."""

    def __init__(self, state_dir: Path, state: SimState) -> None:
        self.state_dir = Path(state_dir)
        self.state = state
        self.lock: threading.RLock = threading.RLock()

    # ---- layout
    @property
    def volumes_dir(self) -> Path:
        return self.state_dir / "volumes"

    @property
    def snapshots_dir(self) -> Path:
        return self.state_dir / "snapshots"

    def volume_path(self, volume_id: str) -> Path:
        return self.volumes_dir / f"{volume_id}.raw"

    def snapshot_path(self, snapshot_id: str) -> Path:
        return self.snapshots_dir / f"{snapshot_id}.raw"

    def device_dir(self, instance_id: str) -> Path:
        return self.state_dir / "hosts" / instance_id / "dev" / "disk" / "by-id"

    # ---- persistence
    @classmethod
    def exists(cls, state_dir: Path) -> bool:
        return (Path(state_dir) / STATE_FILE).is_file()

    @classmethod
    def load(cls, state_dir: Path) -> StateStore:
        path = Path(state_dir) / STATE_FILE
        return cls(Path(state_dir), SimState.model_validate_json(path.read_bytes()))

    @classmethod
    def create(cls, state_dir: Path) -> StateStore:
        store = cls(Path(state_dir), SimState())
        for directory in (store.state_dir, store.volumes_dir, store.snapshots_dir):
            directory.mkdir(parents=True, exist_ok=True)
        return store

    def save(self) -> None:
        with self.lock:
            replace_file(self.state_dir / STATE_FILE, self.state.model_dump_json(indent=1).encode())


def now() -> float:
    return time.time()


def device_link_name(serial: str) -> str:
    # The hypervisor truncates the virtio serial to 20 characters (see mover/devices.py).
    return f"virtio-{serial[:20]}"


def link_device(store: StateStore, volume: VolumeRec) -> None:
    """Make an attached volume visible on its instance as /dev/disk/by-id/virtio-<serial>."""
    if volume.attachment is None:
        return
    directory = store.device_dir(volume.attachment.instance_id)
    directory.mkdir(parents=True, exist_ok=True)
    link = directory / device_link_name(volume.serial)
    if link.is_symlink():
        link.unlink()
    link.symlink_to(store.volume_path(volume.volume_id).resolve())


def unlink_device(store: StateStore, volume: VolumeRec, instance_id: str) -> None:
    link = store.device_dir(instance_id) / device_link_name(volume.serial)
    if link.is_symlink() or link.exists():
        link.unlink()
