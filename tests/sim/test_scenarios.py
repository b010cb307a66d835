"""The demo and scale scenarios hold what demos, tests and benchmarks rely on."""

from __future__ import annotations

import time
from pathlib import Path

from support.sim import ACCESS_KEY, SECRET_KEY, ok

from bingobackup.sim.server import RunningSimulator, start_simulator
from bingobackup.sparse import allocated_bytes


def _instances(endpoint: str) -> dict[str, dict[str, object]]:
    found = {}
    for reservation in ok(endpoint, "DescribeInstances").items("reservationSet"):
        for item in reservation.find("instancesSet").findall("item"):  # type: ignore[union-attr]
            found[item.findtext("instanceName") or ""] = {
                "cluster": item.findtext("clusterId"),
                "os": f"{item.findtext('osName')} {item.findtext('osVersion')}",
                "platform": item.findtext("platform"),
                "nics": len(item.findall("networkInterfaceSet/item")),
                "disks": len(item.findall("blockDeviceMapping/item")),
                "root": item.findtext("blockDeviceMapping/item/ebs/volumeId"),
            }
    return found


def test_demo_scenario(demo: RunningSimulator) -> None:
    vms = _instances(demo.endpoint)
    clusters = {
        c.findtext("clusterId"): c.findtext("clusterName")
        for c in ok(demo.endpoint, "DescribeClusters").items("clusterSet")
    }
    volumes = {v.findtext("volumeId"): v for v in ok(demo.endpoint, "DescribeVolumes").items("volumeSet")}

    assert sorted(clusters.values()) == ["cluster-a", "cluster-b"]
    assert len(ok(demo.endpoint, "DescribeNodes").items("nodeSet")) >= 4
    assert len(ok(demo.endpoint, "DescribeStorages").items("storageSet")) >= 2
    for cluster_id, name in clusters.items():
        host = vms[f"backup-host-{name}"]
        assert (host["cluster"], host["os"]) == (cluster_id, "Ubuntu 20.04")
    assert len([n for n in vms if not n.startswith("backup-host-")]) >= 6
    assert vms["linux_local"]["disks"] == 1
    assert vms["linux_mul_disk"]["disks"] == 3
    assert vms["linux_mul_nic"]["nics"] == 2
    assert volumes[vms["raw_disk_vm"]["root"]].findtext("format") == "raw"
    assert vms["win2019-ad"]["platform"] == "windows"
    assert any(v["os"] in ("Debian 11", "CentOS 6.10") for v in vms.values())
    data = sum(allocated_bytes(p) for p in (demo.state_dir / "volumes").iterdir())
    assert 100 << 20 < data < 600 << 20, "a few hundred MiB in all"


def test_scale_scenario_is_quick_and_sparse(tmp_path: Path) -> None:
    started = time.monotonic()
    running = start_simulator(tmp_path / "state", ACCESS_KEY, SECRET_KEY, scenario="scale")
    seconds = time.monotonic() - started
    try:
        vms = _instances(running.endpoint)
        scale = [v for n, v in vms.items() if n.startswith("scale-vm-")]
        assert len(scale) == 100 and {v["disks"] for v in scale} == {4}
        files = list((running.state_dir / "volumes").iterdir())
        assert sum(allocated_bytes(p) for p in files) < 200 << 20
        assert seconds < 30, f"creating the scale scenario took {seconds:.1f} s"
    finally:
        running.stop()
