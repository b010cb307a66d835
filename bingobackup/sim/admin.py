"""`/_sim/…`: the simulator's own JSON administration (not part of BingoCloud).

Health, fault injection, statistics, adding VMs from raw images, writing into a volume (the
way writers must change a volume's bytes, see layers.py) and setting a datastore's size, as
listed in docs/cloud-api.md. Loopback only, no signature.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bingobackup.sim.addvm import AddVmRequest, add_vm_to_store
from bingobackup.sim.cloud import SimCloud
from bingobackup.sim.errors import SimApiError
from bingobackup.sim.faults import FaultConfig, FaultInjector
from bingobackup.sim.layers import write_volume

PREFIX = "/_sim"


class StorageUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    space_max: int | None = Field(None, ge=0)
    reserved_used: int | None = Field(None, ge=0)


class VolumeWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offset: int = Field(0, ge=0, description="byte offset in the volume")
    source: Path = Field(description="a file on this machine whose bytes are written there")


class AdminResult(BaseModel):
    status: int
    body: dict[str, Any]


def _problem(status: int, message: str) -> AdminResult:
    return AdminResult(status=status, body={"error": message})


def _parse(model: type[BaseModel], raw: bytes) -> Any:
    try:
        return model.model_validate(json.loads(raw or b"{}"))
    except (ValueError, ValidationError) as exc:
        raise ValueError(f"invalid JSON body for {model.__name__}: {exc}") from None


def handle_admin(cloud: SimCloud, faults: FaultInjector, method: str, path: str, raw: bytes) -> AdminResult:
    route = path[len(PREFIX) :].strip("/")
    try:
        return _route(cloud, faults, method, route, raw)
    except ValueError as exc:
        return _problem(400, str(exc))
    except SimApiError as exc:
        status = 404 if exc.code.endswith(".NotFound") else exc.status
        return AdminResult(status=status, body={"error": exc.message, "code": exc.code})


def _route(cloud: SimCloud, faults: FaultInjector, method: str, route: str, raw: bytes) -> AdminResult:
    if route == "health" and method == "GET":
        return AdminResult(status=200, body={"ok": True})
    if route == "faults":
        if method == "PUT":
            config = _parse(FaultConfig, raw)
            faults.configure(config)
        elif method == "DELETE":
            faults.clear()
        elif method != "GET":
            return _problem(405, f"{method} is not supported on {PREFIX}/faults (GET, PUT, DELETE)")
        return AdminResult(status=200, body=faults.config.model_dump())
    if route == "stats" and method == "GET":
        return AdminResult(status=200, body=cloud.stats.snapshot().model_dump())
    if route == "vms" and method == "POST":
        request = _parse(AddVmRequest, raw)
        with cloud.lock:
            instance_id = add_vm_to_store(cloud.store, request)
        return AdminResult(status=201, body={"instance_id": instance_id})
    if route.startswith("volumes/") and route.endswith("/write") and method == "POST":
        volume_id = route.removeprefix("volumes/").removesuffix("/write")
        write = _parse(VolumeWrite, raw)
        with cloud.lock:
            written = write_volume(cloud.store, volume_id, write.offset, write.source)
        return AdminResult(
            status=200, body={"volume_id": volume_id, "offset": write.offset, "written": written}
        )
    if route.startswith("storages/") and method == "PUT":
        storage_id = route.split("/", 1)[1]
        update = _parse(StorageUpdate, raw)
        with cloud.lock:
            storage = cloud.state.storages.get(storage_id)
            if storage is None:
                return _problem(404, f"no storage {storage_id!r}; GET DescribeStorages lists them")
            if update.space_max is not None:
                storage.space_max = update.space_max
            if update.reserved_used is not None:
                storage.reserved_used = update.reserved_used
            cloud.store.save()
            used = cloud.storage_used(storage_id)
        return AdminResult(
            status=200, body={"storage_id": storage_id, "space_max": storage.space_max, "space_used": used}
        )
    return _problem(404, f"no admin route {method} {PREFIX}/{route}")
