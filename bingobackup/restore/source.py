"""What a restore starts from: a backed-up VM as the catalog recorded it.

The engine may not import the catalog (layer rule), so the catalog's records are turned
into these models by the caller (`tasks/restore.py`), through the `BackupCatalog` protocol.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class BackedUpNic(_Frozen):
    device_index: int
    vpc_id: str = ""
    subnet_id: str = ""
    private_ip_address: str = ""
    mac_address: str = ""
    security_group_ids: tuple[str, ...] = ()


class BackedUpDisk(_Frozen):
    volume_id: str
    name: str = ""
    size_bytes: int
    is_root: bool = False
    device_name: str = ""
    storage_id: str = ""


class BackedUpVm(_Frozen):
    """One VM of one committed backup set, with its disks (system disk first)."""

    set_id: str
    vm_id: str
    name: str
    cluster_id: str = ""
    node_id: str = ""
    instance_type: str = ""
    cpu: int = 0
    memory_mib: int = 0
    storage_id: str = ""
    root_device_name: str = "/dev/vda"
    nics: tuple[BackedUpNic, ...] = ()
    disks: tuple[BackedUpDisk, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name} ({self.vm_id}, set {self.set_id})"


class BackupCatalog(Protocol):
    def find_vm(self, vm: str, set_id: str) -> BackedUpVm:
        """VM `vm` (name or id) in set `set_id`, or in the newest set holding it for 'latest'.

        Raises a `BingoBackupError` naming what is missing and how to list what exists.
        """
        ...
