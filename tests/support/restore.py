"""A VM with two disks and two NICs, backed up by the real backup flow: where restore tests start."""

from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bingobackup.checksums import file_sha256 as sha256
from bingobackup.cloud.models import Instance
from bingobackup.restore.verification import verification_code
from bingobackup.specs.job import load_job_spec
from bingobackup.specs.restore import load_restore_spec
from flows.backup import run_backup_now
from support.flow import Registered

MIB = 1 << 20


def _image(path: Path, size: int, pieces: dict[int, int]) -> Path:
    """A sparse raw image: random data of `length` at each offset, holes elsewhere."""
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, length in pieces.items():
            f.seek(offset)
            f.write(os.urandom(length))
    return path


@dataclass
class BackedUp:
    registered: Registered
    instance: Instance
    set_id: str
    sha: dict[str, str]  # source volume id → SHA-256 at backup time
    root_volume: str
    data_volume: str

    def spec(self, **fields: Any) -> dict[str, Any]:
        return {
            "version": 1,
            "name": fields.pop("name", "restore-web"),
            "cloud": self.registered.cloud,
            "backup_host": self.registered.hosts["cluster-a"],
            "pool": self.registered.pool,
            "source": {"vm": self.instance.name, "set": self.set_id},
            **fields,
        }

    def run(self, flow: Any, **fields: Any) -> tuple[Any, dict[str, Any]]:
        spec = load_restore_spec(self.spec(**fields))
        state = flow(spec=spec, confirm=verification_code(spec), return_state=True)
        result = state.result(raise_on_failure=False)
        assert isinstance(result, dict), f"restore failed before any VM: {state.message}"
        return state, result


def add_vm(registered: Registered, tmp_path: Path, name: str, data_mib: int = 4) -> Instance:
    """Root: 96 MiB with 8 MiB of data; data disk: `data_mib` of random data from 1 MiB on."""
    root = _image(tmp_path / f"{name}-root.raw", 96 * MIB, {0: 6 * MIB, 64 * MIB: 2 * MIB})
    data = _image(tmp_path / f"{name}-data.raw", max(48, data_mib + 2) * MIB, {MIB: data_mib * MIB})
    body = {
        "name": name,
        "cluster": "cluster-a",
        "node": "node-a1",
        "storage": "sto-a-local",
        "disks": [str(root), str(data)],
        "nics": 2,
    }
    request = urllib.request.Request(
        registered.sim.admin_url + "/vms", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status == 201
    return next(i for i in registered.client.describe_instances() if i.name == name)


def back_up(registered: Registered, tmp_path: Path, name: str = "web-multi", data_mib: int = 4) -> BackedUp:
    instance = add_vm(registered, tmp_path, name, data_mib)
    state = run_backup_now(load_job_spec(registered.spec(name=f"job-{name}", content=[{"vm": name}])))
    result = state.result(raise_on_failure=False)
    assert isinstance(result, dict) and result["status"] == "ok", state.message
    volumes = sorted(instance.block_devices, key=lambda b: b.device_name)
    sha = {b.volume_id: sha256(registered.volume_file(b.volume_id)) for b in volumes}
    return BackedUp(
        registered, instance, str(result["set_id"]), sha, volumes[0].volume_id, volumes[1].volume_id
    )
