"""The simulator records the power state of a disk's VM at each snapshot (power-off tests read it)."""

from __future__ import annotations

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.waiters import wait_for_instance
from bingobackup.sim.server import RunningSimulator


def test_stats_record_the_vm_state_when_its_disk_is_snapshotted(
    sim: RunningSimulator, cloud_client: BingoCloudClient
) -> None:
    vm = next(i for i in cloud_client.describe_instances() if i.name == "linux_mul_disk")
    running_disk, stopped_disk = [bd.volume_id for bd in vm.block_devices][:2]

    cloud_client.create_snapshot(running_disk)
    cloud_client.stop_instances([vm.instance_id])
    wait_for_instance(cloud_client, vm.instance_id, "stopped", timeout=30)
    cloud_client.create_snapshot(stopped_disk)

    seen = sim.stats().instance_state_at_snapshot
    assert seen[running_disk] == "running" and seen[stopped_disk] == "stopped"
