"""Task runs are named by what they work on, so an operator reading a run in the Prefect UI
sees `back up web-01` and `read vol-… (web-01, system)`, not `back up VM-078`."""

from __future__ import annotations

import time
from pathlib import Path
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterId
from support.flow import Registered
from support.restore import back_up

from bingobackup.restore.verification import verification_code
from bingobackup.specs.restore import load_restore_spec
from flows.restore import restore_vm


def _task_run_names(flow_run_id: UUID, expected: set[str], prefix: str = "") -> set[str]:
    """The run's task run names once the API holds `expected` and one starting with `prefix`
    (task runs reach the server as events, a moment after the run ends), or as they are
    after 30 s."""
    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            names = {run.name for run in runs}
            complete = expected <= names and any(name.startswith(prefix) for name in names)
            if complete or time.monotonic() > deadline:
                return names
            client.api_healthcheck()  # a round trip between looks, not a sleep


def test_backup_and_restore_task_runs_name_their_vm_and_disks(registered: Registered, tmp_path: Path) -> None:
    backed_up = back_up(registered, tmp_path, name="named-vm")  # no other test backs up this name
    instance = backed_up.instance
    [root] = [b.volume_id for b in instance.block_devices if b.device_name == instance.root_device_name]
    [data] = [b.volume_id for b in instance.block_devices if b.volume_id != root]
    with get_client(sync_client=True) as client:
        [backup_run] = [
            run
            for run in client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["bingobackup-backup"]))
            )
            if run.parameters["spec"]["name"] == "job-named-vm"
        ]
    expected = {
        "snapshot named-vm",
        "back up named-vm",
        f"back up {root} (named-vm, system)",
        f"back up {data} (named-vm, data)",
        f"read {root} (named-vm, system)",
        f"dedup {data} (named-vm, data)",
        f"write {data} (named-vm, data) to the pool",
    }
    assert expected <= _task_run_names(backup_run.id, expected)

    nics = [{"index": i, "ip": "auto", "mac": "auto"} for i in (0, 1)]  # the source VM still runs
    spec = load_restore_spec(backed_up.spec(target={"name": "named-vm-restored", "nics": nics}))
    state = restore_vm(spec=spec, confirm=verification_code(spec), return_state=True)
    assert state.is_completed(), state.message
    expected = {"restore named-vm → named-vm-restored", "create VM named-vm-restored"}
    names = _task_run_names(state.state_details.flow_run_id, expected, prefix=f"write {root} → ")
    assert expected <= names
    assert any(name.startswith(f"write {root} → ") for name in names)
