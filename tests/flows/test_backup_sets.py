"""What a backup set holds when VMs share data, and when one VM fails."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from support.flow import Registered

from bingobackup.sim.content import write_disk_image
from bingobackup.specs.job import load_job_spec
from catalog import Catalog
from flows.backup import run_backup_now


def add_vm(registered: Registered, name: str, image: Path) -> str:
    body = json.dumps({"name": name, "cluster": "cluster-a", "disks": [str(image)]}).encode()
    request = urllib.request.Request(
        f"{registered.sim.admin_url}/vms",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return str(json.loads(response.read())["instance_id"])


def test_two_vms_with_identical_disks_share_chunks(registered: Registered, tmp_path: Path) -> None:
    image = tmp_path / "golden.raw"
    write_disk_image(image, 64 << 20, seed="twins", data_fraction=0.5)
    first, second = add_vm(registered, "twin-1", image), add_vm(registered, "twin-2", image)
    state = run_backup_now(load_job_spec(registered.spec(content=[{"vm": "twin-1"}, {"vm": "twin-2"}])))
    assert state.is_completed(), state.message
    with Catalog.open(str(registered.pool_dir), pool=registered.pool) as cat:
        digests = cat.query(
            "SELECT d.vm_id, list(c.digest ORDER BY c.offset) AS digests, sum(c.length) AS data "
            "FROM chunks c JOIN disk_backups d USING (pool, set_id, volume_id) GROUP BY d.vm_id"
        ).set_index("vm_id")
        stored = int(cat.query("SELECT bytes_stored FROM backup_sets")["bytes_stored"][0])
    assert list(digests.loc[first, "digests"]) == list(digests.loc[second, "digests"])
    # The pool holds the shared data once: less than one disk's worth of data was stored.
    assert stored < int(digests.loc[first, "data"])


def test_one_failing_vm_does_not_stop_the_others(registered: Registered) -> None:
    broken = next(i for i in registered.client.describe_instances() if i.name == "centos6-legacy")
    registered.volume_file(broken.block_devices[0].volume_id).unlink()  # its disk is gone on the storage
    state = run_backup_now(
        load_job_spec(registered.spec(content=[{"vm": "linux_local"}, {"vm": "centos6-legacy"}]))
    )
    assert state.is_failed()
    assert "centos6-legacy" in (state.message or "")
    with Catalog.open(str(registered.pool_dir), pool=registered.pool) as cat:
        sets = cat.list_sets()
        vms = cat.query("SELECT vm_name, status, error FROM vm_backups ORDER BY vm_name")
    assert list(sets["status"]) == ["partial"]
    assert dict(zip(vms["vm_name"], vms["status"], strict=True)) == {
        "centos6-legacy": "failed",
        "linux_local": "ok",
    }
    assert vms.set_index("vm_name").loc["centos6-legacy", "error"]
    assert not list(registered.client.describe_snapshots())
