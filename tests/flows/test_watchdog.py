"""A run that stands still is stopped by its watchdog and fails naming what it waited on,
instead of hanging (issue 22): here a disk read paced at 1 KiB/s, so after the free first
burst no byte moves and no disk finishes for longer than the job's `stall_minutes`."""

from __future__ import annotations

import pytest
from support.flow import Registered

from bingobackup.jobs.staging import TEMP_PREFIX
from bingobackup.specs.job import load_job_spec
from bingobackup.watchdog import RunStalled, Watchdog
from flows.backup import run_backup_now


def test_a_backup_that_makes_no_progress_fails_naming_the_vm_it_waited_on(registered: Registered) -> None:
    spec = registered.spec(
        content=[{"vm": "linux_local"}],
        options={"read_limits": [{"rate": "1KiB/s"}], "stall_minutes": 0.05},
    )

    state = run_backup_now(load_job_spec(spec))

    assert state.is_failed()
    assert "no progress for" in state.message and "stall_minutes" in state.message
    assert "linux_local" in state.message
    summary = state.result(raise_on_failure=False)
    assert isinstance(summary, dict)
    assert [row["status"].split(":")[0] for row in summary["rows"]] == ["failed"]
    # Stopped, not abandoned: the disk's snapshot and staged volume were cleaned up.
    client = registered.client
    assert [s.snapshot_id for s in client.describe_snapshots() if s.description.startswith(TEMP_PREFIX)] == []
    assert [v.volume_id for v in client.describe_volumes() if v.name.startswith(TEMP_PREFIX)] == []


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_watchdog_trips_only_after_the_limit_without_a_beat_and_stops_the_run() -> None:
    clock = Clock()
    dog = Watchdog(60.0, clock=clock)
    clock.now = 59.0
    dog.check(["VM a"])  # not yet
    dog.beat()
    clock.now = 118.0
    dog.check(["VM a"])  # 59 s since the beat
    assert not dog.cancel.is_set()
    clock.now = 119.5
    with pytest.raises(RunStalled, match=r"no progress for 1\.0 min .* waiting on: VM a; disk b"):
        dog.check(["VM a", "disk b"])
    assert dog.cancel.is_set() and dog.tripped is not None
    dog.beat()  # tripped stays tripped: the run's pipelines were told to stop
    with pytest.raises(RunStalled):
        dog.check([])
