"""Power off during backup (guide table 2): stop the VM for its snapshot, start it again.

The VM is started again as soon as its disks are captured (the snapshots are complete),
not after the long copy, and also when the snapshot step fails: a backup must never leave
a production VM stopped. A VM that was not running is left as it was.

A run can die between the stop and the start (SIGKILL, a rebooted backup host), where no
`finally` runs. So "job J stopped VM V" is recorded in a ledger before the stop and removed
only once V runs again; whoever finds the record later (the job's next run, `bingobackup
job free-slots J`) starts V again with `start_left_stopped`. The ledger is shared state
every backup host and the CLI reach (the Prefect server, see `tasks/power.py`).

A VM the ledger names is started again when it is stopped (or stopping) then, whoever
stopped it since: the cloud keeps no history that could tell an operator's stop from ours.
An operator who wants it kept down deletes its ledger entry first. A VM running again is
only struck from the ledger; one that is gone or terminated is left alone.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.errors import CloudNotFoundError
from bingobackup.cloud.waiters import wait_for_instance
from bingobackup.errors import BingoBackupError

log = logging.getLogger("bingobackup.backup")

DEFAULT_POWER_TIMEOUT = 600.0


class PowerError(BingoBackupError):
    pass


class StoppedVm(BaseModel):
    """One ledger entry: a job's run stopped this VM and has not yet seen it running again."""

    model_config = ConfigDict(frozen=True)

    job: str
    cloud: str  # the registered cloud the VM is in
    instance_id: str
    vm_name: str
    run: str  # the run that stopped it, as operators see it (its flow run's name)
    stopped_at: datetime

    def describe(self) -> str:
        return f"VM {self.vm_name} ({self.instance_id})"


class StoppedVmLedger(Protocol):
    """Durable and shared: an entry must outlive the process (and host) that recorded it and
    be seen by whichever backup host runs the job next."""

    def record(self, vm: StoppedVm) -> None:
        """Keep `vm` (replacing an entry of the same job and VM); returns once it is stored."""

    def forget(self, vm: StoppedVm) -> None:
        """Remove the entry of `vm`'s job and VM, if any."""

    def of_job(self, job: str) -> list[StoppedVm]: ...


@contextlib.contextmanager
def powered_off(
    client: BingoCloudClient,
    vm: StoppedVm,
    ledger: StoppedVmLedger,
    *,
    timeout: float = DEFAULT_POWER_TIMEOUT,
) -> Iterator[bool]:
    """Inside: the VM is stopped. Yields whether this call stopped it (and will start it)."""
    state = client.get_instance(vm.instance_id).state.name
    if state not in ("running", "pending"):
        # Stopped already (or stopping): nothing to undo afterwards.
        if state == "stopping":
            wait_for_instance(client, vm.instance_id, "stopped", timeout=timeout)
        yield False
        return
    try:
        ledger.record(vm)
    except Exception as exc:
        raise PowerError(
            f"{vm.describe()} was not stopped for its snapshot: recording that job {vm.job} stops "
            f"it failed ({exc}), and without that record a killed run would leave it stopped. "
            "Check that the Prefect server is reachable and run the job again."
        ) from exc
    log.info("stopping %s for its snapshot (power_off)", vm.describe())
    try:
        client.stop_instances([vm.instance_id])
        wait_for_instance(client, vm.instance_id, "stopped", timeout=timeout)
        yield True
    finally:
        log.info("starting %s again", vm.describe())
        start_again(client, vm.instance_id, timeout=timeout)
        _forget(ledger, vm)


def start_again(client: BingoCloudClient, instance_id: str, *, timeout: float) -> None:
    """Start a VM this job stopped; waits for it to stop first if the stop is still under way."""
    state = client.get_instance(instance_id).state.name
    if state == "stopping":
        wait_for_instance(client, instance_id, "stopped", timeout=timeout)
        state = "stopped"
    if state == "stopped":
        client.start_instances([instance_id])
    wait_for_instance(client, instance_id, "running", timeout=timeout)


@dataclass(frozen=True)
class LeftStopped:
    """A ledger entry a dead run left, and what became of its VM (`note`, for operators)."""

    vm: StoppedVm
    note: str
    still_stopped: bool = False  # starting it failed: an operator must see to it


def start_left_stopped(
    ledger: StoppedVmLedger,
    job: str,
    client_for: Callable[[str], BingoCloudClient],
    *,
    timeout: float = DEFAULT_POWER_TIMEOUT,
) -> list[LeftStopped]:
    """Start again the VMs that runs of `job` stopped and did not start (their process died);
    the entries that needed doing something, each with what was done.

    Call it only when no run of the job is going (holding the job's run slot, or as the
    operator who frees it): a live run's VM is stopped on purpose until its snapshot is taken.
    `client_for(cloud name)` is a client of that registered cloud. An entry whose VM could not
    be started stays in the ledger for the next try.
    """
    handled = []
    for vm in ledger.of_job(job):
        since = f"run {vm.run} stopped it for its snapshot at {vm.stopped_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
        try:
            client = client_for(vm.cloud)
            state: str
            try:
                state = client.get_instance(vm.instance_id).state.name
            except CloudNotFoundError:
                state = "gone"
            if state in ("running", "pending"):  # started since: by an operator, or by the run itself
                log.info("%s is running again (%s); struck from the ledger", vm.describe(), since)
                _forget(ledger, vm)
                continue
            if state in ("stopped", "stopping"):
                start_again(client, vm.instance_id, timeout=timeout)
                note = f"started again: {since} and ended without starting it (killed, or its host stopped)"
            else:
                note = f"not started again: it is {state} now ({since})"
            _forget(ledger, vm)
            handled.append(LeftStopped(vm, note))
        except Exception as exc:
            handled.append(
                LeftStopped(
                    vm,
                    f"STILL STOPPED: {since}, and starting it again failed: {exc}. Start it by hand; "
                    f"the job's next run and `bingobackup job free-slots {job}` try again",
                    still_stopped=True,
                )
            )
    return handled


def _forget(ledger: StoppedVmLedger, vm: StoppedVm) -> None:
    # A stale entry is harmless (whoever finds it sees the VM running and strikes it): a
    # ledger out of reach must not fail a backup whose VM is running again.
    try:
        ledger.forget(vm)
    except Exception as exc:
        log.warning("%s runs again, but its ledger entry stays (%s)", vm.describe(), exc)
