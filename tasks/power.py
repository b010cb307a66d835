"""Power off during backup, on the Prefect side: the ledger of VMs a run stopped, kept as
Prefect variables, and starting again the VMs a killed run left stopped.

Why the Prefect server: the ledger must outlive the backup host that wrote it (killed,
rebooted, or gone) and be read by whichever backup host runs the job next and by `bingobackup
job free-slots` on an operator's machine; the server is the one store they all reach (shared
state lives there, DESIGN §2.0), and it stores each write in its database before answering.
Operators see the entries in the UI (Variables, tag `bingobackup-stopped-vm`) and may delete
one to keep its VM stopped.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from prefect.runtime import flow_run

from bingobackup.backup.job import BackupJob
from bingobackup.backup.power import DEFAULT_POWER_TIMEOUT, LeftStopped, StoppedVm, start_left_stopped
from bingobackup.cloud.client import BingoCloudClient
from bingobackup.resources.access import cloud_for
from bingobackup.resources.discovery import ResolvedVm
from bingobackup.resources.users import resolve_user
from tasks.blocks import PrefectRegistryStore
from tasks.variables import delete_variable, save_variable, variable_name, variables_tagged

LEDGER_TAG = "bingobackup-stopped-vm"


def _job_tag(job: str) -> str:
    return f"bingobackup-job:{job}"


def _variable_name(job: str, instance_id: str) -> str:
    return variable_name("bingobackup-stopped", job, instance_id)


class PrefectStoppedVmLedger:
    """`bingobackup.backup.power.StoppedVmLedger` as one Prefect variable per job and VM (the
    parallel VMs of a run never write the same variable)."""

    def record(self, vm: StoppedVm) -> None:
        # A stale entry of the same VM is replaced.
        save_variable(
            _variable_name(vm.job, vm.instance_id), vm.model_dump(mode="json"), [LEDGER_TAG, _job_tag(vm.job)]
        )

    def forget(self, vm: StoppedVm) -> None:
        delete_variable(_variable_name(vm.job, vm.instance_id))

    def of_job(self, job: str) -> list[StoppedVm]:
        return [StoppedVm.model_validate(variable.value) for variable in variables_tagged(_job_tag(job))]


def stop_of_this_run(job: BackupJob, vm: ResolvedVm) -> StoppedVm:
    """The ledger entry for `vm` stopped by the current flow run."""
    return StoppedVm(
        job=job.spec.name,
        cloud=job.cloud.name,
        instance_id=vm.instance_id,
        vm_name=vm.name,
        run=flow_run.name or str(flow_run.id),
        stopped_at=datetime.now(UTC),
    )


def start_vms_left_stopped(job_name: str, user_name: str | None) -> list[LeftStopped]:
    """`start_left_stopped` for job `job_name` with this ledger, each VM's cloud as `user_name`
    may use it. Call it only when no run of the job is going (see there)."""

    @functools.cache
    def client_for(cloud: str) -> BingoCloudClient:
        # A snapshot: one round trip, and no Block.load, which inside a flow run would return
        # a coroutine (the flow is async).
        store = PrefectRegistryStore().snapshot()
        return cloud_for(store, resolve_user(store, user_name), cloud).client()

    return start_left_stopped(PrefectStoppedVmLedger(), job_name, client_for, timeout=DEFAULT_POWER_TIMEOUT)
