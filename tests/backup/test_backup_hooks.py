"""The hook runner backup and restore share: environment, output in the log, time limit."""

from __future__ import annotations

import logging
import time

import pytest

from bingobackup.hooks import HookFailed, hook_env, run_hook
from bingobackup.specs.job import Hook

LOG = logging.getLogger("test.hooks")


def test_hook_sees_job_status_and_vms_and_its_output_reaches_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = hook_env(job="nightly", kind="backup", hook="post_script", status="partial", vms=["web", "db"])
    command = 'echo "job=$BINGOBACKUP_JOB status=$BINGOBACKUP_STATUS vms=$BINGOBACKUP_VMS"; echo oops >&2'
    with caplog.at_level(logging.INFO, logger="test.hooks"):
        result = run_hook("post_script", Hook(command=command), env, LOG)
    assert result.ok and result.exit_code == 0
    assert "post-script | job=nightly status=partial vms=web db" in caplog.text
    assert "post-script | oops" in caplog.text  # stderr too
    assert result.output_tail == "oops"


def test_non_zero_exit_is_reported_with_the_command_status_and_last_output() -> None:
    result = run_hook("precondition", Hook(command="echo 'backup window closed'; exit 3"), {}, LOG)
    assert not result.ok and result.exit_code == 3 and not result.timed_out
    message = str(HookFailed(result, "the job was aborted before any snapshot"))
    assert "precondition `echo 'backup window closed'; exit 3` exited with status 3" in message
    assert "backup window closed" in message and "aborted before any snapshot" in message


def test_a_hook_over_its_time_limit_is_killed_with_its_children(tmp_path) -> None:
    marker = tmp_path / "survived"
    command = f"(sleep 1; touch {marker}) & sleep 30"
    started = time.monotonic()
    result = run_hook("pre_script", Hook(command=command, timeout_seconds=1), {}, LOG)
    assert result.timed_out and result.exit_code is None and not result.ok
    assert time.monotonic() - started < 20
    assert "stopped at its time limit" in result.describe()
    # The child would have touched the marker 1 s after the start: give it twice that.
    deadline = started + 2.5
    while time.monotonic() < deadline and not marker.exists():
        time.sleep(0.1)
    assert not marker.exists(), "a child of the timed-out hook kept running"
