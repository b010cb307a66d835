"""Power off during backup against the simulated cloud: stopped for the snapshot, started
again afterwards, also when the snapshot step fails; recorded in a ledger before the stop so
that a VM a dead run left stopped is started again by whoever finds the entry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bingobackup.backup.power import PowerError, StoppedVm, powered_off, start_left_stopped
from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.waiters import wait_for_instance


class Ledger:
    """The ledger in memory (the product keeps it on the Prefect server: tasks/power.py)."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], StoppedVm] = {}

    def record(self, vm: StoppedVm) -> None:
        self.entries[vm.job, vm.instance_id] = vm

    def forget(self, vm: StoppedVm) -> None:
        self.entries.pop((vm.job, vm.instance_id), None)

    def of_job(self, job: str) -> list[StoppedVm]:
        return [vm for (name, _), vm in self.entries.items() if name == job]


def _stop(client: BingoCloudClient, name: str) -> StoppedVm:
    vm = next(i for i in client.describe_instances() if i.name == name)
    return StoppedVm(
        job="nightly",
        cloud="sim",
        instance_id=vm.instance_id,
        vm_name=name,
        run="nightly 2026-01-01 02:00:00 UTC",
        stopped_at=datetime(2026, 1, 1, 2, 0, 1, tzinfo=UTC),
    )


def _state(client: BingoCloudClient, vm: StoppedVm) -> str:
    return client.get_instance(vm.instance_id).state.name


def test_vm_is_stopped_inside_and_running_again_after_and_in_the_ledger_meanwhile(
    cloud_client: BingoCloudClient,
) -> None:
    vm, ledger = _stop(cloud_client, "linux_local"), Ledger()
    with powered_off(cloud_client, vm, ledger, timeout=30) as stopped_by_us:
        assert stopped_by_us
        assert _state(cloud_client, vm) == "stopped"
        assert ledger.of_job("nightly") == [vm]
    assert _state(cloud_client, vm) == "running"
    assert ledger.of_job("nightly") == []


def test_vm_is_started_again_when_the_snapshot_step_fails(cloud_client: BingoCloudClient) -> None:
    vm, ledger = _stop(cloud_client, "linux_local"), Ledger()
    with (
        pytest.raises(RuntimeError, match="snapshot broke"),
        powered_off(cloud_client, vm, ledger, timeout=30),
    ):
        raise RuntimeError("snapshot broke")
    assert _state(cloud_client, vm) == "running"
    assert ledger.of_job("nightly") == []


def test_a_stopped_vm_is_left_stopped_and_not_recorded(cloud_client: BingoCloudClient) -> None:
    vm, ledger = _stop(cloud_client, "linux_local"), Ledger()
    cloud_client.stop_instances([vm.instance_id])
    with powered_off(cloud_client, vm, ledger, timeout=30) as stopped_by_us:
        assert not stopped_by_us
        assert ledger.of_job("nightly") == []
    assert _state(cloud_client, vm) == "stopped"


def test_a_vm_is_not_stopped_when_the_ledger_cannot_record_it(cloud_client: BingoCloudClient) -> None:
    class Unreachable(Ledger):
        def record(self, vm: StoppedVm) -> None:
            raise ConnectionError("Prefect server unreachable")

    vm = _stop(cloud_client, "linux_local")
    with (
        pytest.raises(PowerError, match=r"linux_local .* was not stopped.*Prefect server unreachable"),
        powered_off(cloud_client, vm, Unreachable(), timeout=30),
    ):
        pytest.fail("the snapshot step ran although the stop was not recorded")
    assert _state(cloud_client, vm) == "running"


def test_a_vm_a_dead_run_left_stopped_is_started_and_struck_from_the_ledger(
    cloud_client: BingoCloudClient,
) -> None:
    stopped, running = _stop(cloud_client, "linux_local"), _stop(cloud_client, "linux_mul_nic")
    ledger = Ledger()
    for vm in (stopped, running):
        ledger.record(vm)
    other_job = stopped.model_copy(update={"job": "weekly"})
    ledger.record(other_job)
    cloud_client.stop_instances([stopped.instance_id])  # the dead run stopped it; the other one
    wait_for_instance(cloud_client, stopped.instance_id, "stopped", timeout=30)  # never got to

    handled = start_left_stopped(ledger, "nightly", lambda cloud: cloud_client, timeout=30)

    assert _state(cloud_client, stopped) == "running"
    assert [(h.vm, h.still_stopped) for h in handled] == [(stopped, False)]  # nothing to do for the other
    assert handled[0].note == (
        "started again: run nightly 2026-01-01 02:00:00 UTC stopped it for its snapshot at "
        "2026-01-01 02:00:01 UTC and ended without starting it (killed, or its host stopped)"
    )
    assert ledger.of_job("nightly") == [] and ledger.of_job("weekly") == [other_job]


def test_a_vm_that_cannot_be_started_stays_in_the_ledger_and_is_named(cloud_client: BingoCloudClient) -> None:
    vm, ledger = _stop(cloud_client, "linux_local"), Ledger()
    ledger.record(vm)

    def no_cloud(name: str) -> BingoCloudClient:
        raise LookupError(f"cloud {name} is not registered")

    [left] = start_left_stopped(ledger, "nightly", no_cloud, timeout=30)

    assert left.still_stopped and left.note.startswith("STILL STOPPED: run nightly 2026-01-01")
    assert "cloud sim is not registered. Start it by hand" in left.note
    assert "`bingobackup job free-slots nightly` try again" in left.note
    assert ledger.of_job("nightly") == [vm]
