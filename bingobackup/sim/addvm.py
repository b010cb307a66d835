"""`bingobackup sim add-vm`: a VM whose volumes are copies of raw images (holes kept).

Works on a stopped simulator's state directory, or inside a running one through
`POST /_sim/vms` (the server calls `add_vm_to_store` holding its lock).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, Field

from bingobackup.sim.errors import SimApiError, SimulatorError
from bingobackup.sim.provision import DiskSpec, VmSpec, provision_vm
from bingobackup.sim.state import StateStore

SERVER_LOCK_FILE = ".server.lock"


class AddVmRequest(BaseModel):
    name: str = Field(min_length=1)
    cluster: str = Field(min_length=1, description="cluster name or id")
    disks: list[Path] = Field(min_length=1, description="raw images; the first is the system disk")
    node: str | None = None
    storage: str | None = None
    os_name: str = "Ubuntu"
    os_version: str = "20.04"
    platform: str = "linux"
    format: str = "qcow2"
    nics: int = Field(1, ge=1, le=8)


def add_vm_to_store(store: StateStore, request: AddVmRequest) -> str:
    """Add the VM (caller holds `store.lock`); returns its instance id. Raises SimApiError."""
    missing = [str(p) for p in request.disks if not Path(p).is_file()]
    if missing:
        raise SimApiError("InvalidParameterValue", f"no such image file: {', '.join(missing)}")
    taken = [
        i.instance_id
        for i in store.state.instances.values()
        if i.name == request.name and i.state != "terminated"
    ]
    if taken:
        raise SimApiError("InvalidParameterValue", f"a VM named {request.name!r} already exists ({taken[0]})")
    spec = VmSpec(
        name=request.name,
        cluster=request.cluster,
        node=request.node,
        storage=request.storage,
        os_name=request.os_name,
        os_version=request.os_version,
        platform=request.platform,
        nics=request.nics,
        disks=[DiskSpec(image=Path(p), format=request.format) for p in request.disks],
    )
    instance = provision_vm(store, spec)
    store.save()
    return instance.instance_id


@contextmanager
def exclusive_state_dir(state_dir: Path) -> Iterator[int]:
    """Hold the state directory's server lock; a second holder (a running simulator) is refused."""
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    fd = os.open(Path(state_dir) / SERVER_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SimulatorError(
                f"a simulator is running on {state_dir}; go through it instead "
                "(bingobackup sim add-vm or write-volume --endpoint http://127.0.0.1:PORT/ …) or stop it first"
            ) from None
        yield fd
    finally:
        os.close(fd)


def add_vm(
    state_dir: Path,
    name: str,
    cluster: str,
    disk_images: list[Path],
    *,
    node: str | None = None,
    storage: str | None = None,
    os_name: str = "Ubuntu",
    os_version: str = "20.04",
    format: str = "qcow2",
    nics: int = 1,
) -> str:
    """Add a VM to a stopped simulator's state directory; returns its instance id."""
    if not StateStore.exists(state_dir):
        raise SimulatorError(
            f"{state_dir} holds no simulator state; create it first with "
            f"bingobackup sim serve --state {state_dir} … (then stop it, or use --endpoint)"
        )
    request = AddVmRequest(
        name=name,
        cluster=cluster,
        disks=list(disk_images),
        node=node,
        storage=storage,
        os_name=os_name,
        os_version=os_version,
        format=format,
        nics=nics,
    )
    with exclusive_state_dir(state_dir):
        store = StateStore.load(state_dir)
        with store.lock:
            try:
                return add_vm_to_store(store, request)
            except SimApiError as error:
                raise SimulatorError(f"cannot add VM {name!r}: {error.message}") from None
