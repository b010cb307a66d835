"""A whole cluster of the simulator's `scale` scenario (50 VMs × 4 disks) backed up and
restored by one job each: every VM gets done, and the limits are used exactly, not exceeded.

These runs hung before `flows/admission.py`: VM tasks waiting for a tag slot held the run's
threads, so the disk tasks of the VMs that had a slot never got one (issue 22). The watchdog
test proves a run that stands still ends in a failure naming what it waited on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.flow import Registered, local_dedup_pool, register_cloud_and_pool
from support.testkeys import ACCESS_KEY, SECRET_KEY

from bingobackup.cli.prefect_server import ServerInfo
from bingobackup.cloud.client import BingoCloudClient
from bingobackup.restore.verification import verification_code
from bingobackup.sim.server import RunningSimulator, start_simulator
from bingobackup.sparse import data_extents
from bingobackup.specs.job import load_job_spec
from bingobackup.specs.restore import load_restore_spec
from flows.backup import run_backup_now
from flows.restore import restore_vm

pytestmark = pytest.mark.slow

VMS_PER_CLUSTER = 50
DISKS_PER_VM = 4
ONE = {"parallel_vms": 1, "parallel_vms_per_node": 1, "parallel_disks_per_vm": 1}
DEFAULTS: dict[str, int] = {}  # the spec's defaults: 2 VMs, 2 per node, 2 disks per VM


@pytest.fixture(scope="module")
def scale(prefect_server: ServerInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registered]:
    """The `scale` scenario (100 VMs × 4 sparse 20 GiB disks, two clusters) registered with a
    dedup pool; shared by this module's tests, which use its clusters apart."""
    base = tmp_path_factory.mktemp("scale")
    sim: RunningSimulator = start_simulator(
        state_dir=base / "sim-state",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        scenario="scale",
        # Orchestration is under test, not the cloud's pace: 0.02 s per state change, not 0.2.
        transition_delay=0.02,
    )
    client = BingoCloudClient(sim.endpoint, ACCESS_KEY, SECRET_KEY, retry_window_seconds=5.0)

    try:
        yield register_cloud_and_pool(sim, client, base / "pool", local_dedup_pool(base / "pool"))
    finally:
        sim.stop()


def _cluster_vms(scale: Registered, cluster: str) -> list[Any]:
    cluster_id = next(c.cluster_id for c in scale.client.describe_clusters() if c.name == cluster)
    return [
        i
        for i in scale.client.describe_instances()
        if i.name.startswith("scale-vm-") and i.cluster_id == cluster_id
    ]


_BACKED_UP: dict[tuple[str, str], dict[str, Any]] = {}


def _back_up_cluster(scale: Registered, cluster: str, limits: dict[str, int]) -> dict[str, Any]:
    """The summary of backing up `cluster` with `limits`: run once per scale simulator."""
    key = (scale.cloud, cluster)
    if key not in _BACKED_UP:
        spec = scale.spec(cluster, name=f"scale-{cluster}", options=limits)
        state = run_backup_now(load_job_spec(spec))
        assert state.is_completed(), state.message
        _BACKED_UP[key] = state.result()
    return _BACKED_UP[key]


@pytest.mark.parametrize(
    ("cluster", "limits", "per_vm", "per_host"),
    [("cluster-a", ONE, 1, 1), ("cluster-b", DEFAULTS, 2, 4)],
    ids=["limits-of-one", "default-limits"],
)
def test_a_50_vm_cluster_is_backed_up_whole_within_its_limits(
    scale: Registered, cluster: str, limits: dict[str, int], per_vm: int, per_host: int
) -> None:
    vms = _cluster_vms(scale, cluster)
    assert len(vms) == VMS_PER_CLUSTER

    summary = _back_up_cluster(scale, cluster, limits)

    assert summary["status"] == "ok"
    assert sorted(row["VM"].split(" ")[0] for row in summary["rows"]) == sorted(vm.name for vm in vms)
    assert {row["status"] for row in summary["rows"]} == {"ok"}
    assert all(row["disks"] == DISKS_PER_VM for row in summary["rows"])
    stats = scale.sim.stats()
    # Each VM's disks staged at most `parallel_disks_per_vm` at once, and at least one VM used
    # them all (its disks are submitted together); the backup host held at most parallel VMs ×
    # parallel disks (reaching it depends on two VMs' disk phases meeting).
    peaks = [stats.max_attached_per_source_vm[vm.instance_id] for vm in vms]
    assert max(peaks) == per_vm
    assert per_vm <= stats.max_attached_per_host[scale.hosts[cluster]] <= per_host


def _same_content(a: Path, b: Path) -> bool:
    """Byte-equal as disks (holes read as zeros), reading only where either file has data."""
    if a.stat().st_size != b.stat().st_size:
        return False
    extents = sorted([*data_extents(a), *data_extents(b)])
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for offset, length in extents:
            if os.pread(fa.fileno(), length, offset) != os.pread(fb.fileno(), length, offset):
                return False
    return True


def test_a_50_vm_restore_job_restores_every_vm(scale: Registered) -> None:
    cluster = "cluster-a"
    vms = _cluster_vms(scale, cluster)
    _back_up_cluster(scale, cluster, ONE)  # done already when the backup test ran first
    spec = load_restore_spec(
        {
            "version": 1,
            "name": "restore-scale",
            "cloud": scale.cloud,
            "backup_host": scale.hosts[cluster],
            "pool": scale.pool,
            "vms": [
                {
                    "source": {"vm": vm.name, "set": "latest"},
                    # The source VMs still run: their new copies take new addresses.
                    "target": {"nics": [{"index": 0, "ip": "auto", "mac": "auto"}]},
                }
                for vm in vms
            ],
            "power_on": False,
        }
    )

    state = restore_vm(spec=spec, confirm=verification_code(spec), return_state=True)

    assert state.is_completed(), state.message
    outcomes = state.result()["outcomes"]
    assert len(outcomes) == VMS_PER_CLUSTER
    assert {o["status"] for o in outcomes} == {"ok"}
    assert sorted(o["source_vm"] for o in outcomes) == sorted(vm.name for vm in vms)
    # Every restored VM holds the bytes of its source's disks (checked for a sample of VMs:
    # comparing where data is takes a moment per disk).
    by_name = {vm.name: vm for vm in vms}
    instances = {i.instance_id: i for i in scale.client.describe_instances()}
    for outcome in outcomes[:: VMS_PER_CLUSTER // 5]:
        source = by_name[outcome["source_vm"]]
        new_vm = instances[outcome["instance_id"]]
        restored = [scale.volume_file(b.volume_id) for b in new_vm.block_devices]
        originals = [scale.volume_file(b.volume_id) for b in source.block_devices]
        assert len(restored) == DISKS_PER_VM
        for disk in restored:
            assert sum(_same_content(disk, original) for original in originals) == 1
    # The restore's default limits: 2 VMs × 2 disks on the backup host at most; more than one
    # at a time (the backup of this cluster, with limits of one, never held more than one).
    assert 2 <= scale.sim.stats().max_attached_per_host[scale.hosts[cluster]] <= 4
