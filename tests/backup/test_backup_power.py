"""Power off during backup against the simulated cloud: stopped for the snapshot, started
again afterwards, also when the snapshot step fails."""

from __future__ import annotations

import pytest

from bingobackup.backup.power import powered_off
from bingobackup.cloud.client import BingoCloudClient


def _vm(client: BingoCloudClient, name: str) -> str:
    return next(i.instance_id for i in client.describe_instances() if i.name == name)


def test_vm_is_stopped_inside_and_running_again_after(cloud_client: BingoCloudClient) -> None:
    vm = _vm(cloud_client, "linux_local")
    with powered_off(cloud_client, vm, timeout=30) as stopped_by_us:
        assert stopped_by_us
        assert cloud_client.get_instance(vm).state.name == "stopped"
    assert cloud_client.get_instance(vm).state.name == "running"


def test_vm_is_started_again_when_the_snapshot_step_fails(cloud_client: BingoCloudClient) -> None:
    vm = _vm(cloud_client, "linux_local")
    with pytest.raises(RuntimeError, match="snapshot broke"), powered_off(cloud_client, vm, timeout=30):
        raise RuntimeError("snapshot broke")
    assert cloud_client.get_instance(vm).state.name == "running"


def test_a_stopped_vm_is_left_stopped(cloud_client: BingoCloudClient) -> None:
    vm = _vm(cloud_client, "linux_local")
    with powered_off(cloud_client, vm, timeout=30):
        pass
    cloud_client.stop_instances([vm])
    with powered_off(cloud_client, vm, timeout=30) as stopped_by_us:
        assert not stopped_by_us
    assert cloud_client.get_instance(vm).state.name in ("stopping", "stopped")
