"""A `power_off: true` backup killed (SIGKILL) while its VM is stopped: before the snapshot
and after it. The job's next run, or `bingobackup job free-slots`, starts the VM again and
says so; nothing waits for a lease to run out.

The simulator holds the killed run at the chosen point: it answers the step after it
(CreateSnapshot, or StartInstances) with a retryable error, and the test kills the process
once the simulator has seen that request."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support.flow import Registered, backup_process, bingobackup_command, kill_when, run_log_into
from support.sim_admin import injected_faults

from bingobackup.specs.job import load_job_spec
from flows.backup import job_tag, run_backup_now, summary_rows_from_state
from tasks.limits import delete_tag_limits

HELD_AT = {"before the snapshot": "CreateSnapshot", "after the snapshot": "StartInstances"}


@pytest.mark.parametrize(
    ("point", "recovery"),
    [
        ("before the snapshot", "next run"),
        ("after the snapshot", "next run"),
        ("before the snapshot", "free-slots"),  # the case: then the rerun left it stopped
    ],
)
def test_a_vm_a_killed_power_off_run_left_stopped_is_started_again(
    registered: Registered,
    tmp_path: Path,
    prefect_server,
    caplog: pytest.LogCaptureFixture,
    point: str,
    recovery: str,
) -> None:
    spec = registered.spec(content=[{"vm": "linux_local"}], options={"power_off": True})
    vm = next(i.instance_id for i in registered.client.describe_instances() if i.name == "linux_local")
    held_at = HELD_AT[point]
    with (
        injected_faults(registered.sim, {"error_rate": {held_at: 1.0}}),
        backup_process(spec, tmp_path, prefect_server.url) as (process, env),
    ):
        kill_when(process, lambda: registered.sim.stats().requests.get(held_at, 0) > 0, f"{held_at}")
    assert registered.client.get_instance(vm).state.name == "stopped"  # the kill left it down
    assert len(list(registered.client.describe_snapshots())) == (point == "after the snapshot")

    restarted = f"VM linux_local ({vm}) started again: run "
    if recovery == "free-slots":
        freed = subprocess.run(
            bingobackup_command("job", "free-slots", spec["name"]),
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert freed.returncode == 0, freed.stderr
        assert restarted in " ".join(freed.stdout.split()), freed.stdout
        assert registered.client.get_instance(vm).state.name == "running"
    else:
        # The dead run's slot lapses ~75 s after the kill; freed by hand here so as not to wait.
        delete_tag_limits(job_tag(spec["name"]))

    with run_log_into(caplog):
        rerun = run_backup_now(load_job_spec(spec))

    assert rerun.is_completed(), rerun.message
    assert registered.client.get_instance(vm).state.name == "running"
    assert not list(registered.client.describe_snapshots())  # the dead run's snapshot removed
    _, rows = summary_rows_from_state(rerun)
    notes = [row for row in rows if str(row["status"]).startswith("started again")]
    if recovery == "free-slots":  # already started: the next run has nothing to say about it
        assert notes == [] and restarted not in caplog.text
        return
    assert [row["VM"] for row in notes] == [f"linux_local ({vm})"]
    assert "ended without starting it (killed, or its host stopped)" in str(notes[0]["status"])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(message.startswith(restarted) for message in warnings), warnings
