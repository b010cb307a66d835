"""Precondition, pre-script and post-script of a restore: a false precondition leaves the restore
idle (the guide's state, in the run and in `job list`), creates nothing and says why; the
post-script runs last, after failures too, and is told the outcome."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.flow_engine import run_flow
from support.flow import Registered
from support.restore import BackedUp, back_up, sha256
from typer.testing import CliRunner

from bingobackup.cli.main import app
from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.errors import CloudError
from bingobackup.restore.verification import verification_code
from bingobackup.specs.restore import load_restore_spec
from deployments.jobs import create_job, delete_job
from flows.restore import restore_disk


@pytest.fixture
def backed_up(registered: Registered, tmp_path: Path) -> BackedUp:
    return back_up(registered, tmp_path)


def _recorder(path: Path, then: str = "true") -> str:
    """A hook that appends what it was told to `path`, then runs `then` (its exit status)."""
    fields = "$BINGOBACKUP_HOOK|$BINGOBACKUP_KIND|$BINGOBACKUP_STATUS|$BINGOBACKUP_VMS|$BINGOBACKUP_ERROR"
    return f'echo "{fields}" >> {path}; {then}'


def _heard(path: Path) -> list[list[str]]:
    return [line.split("|") for line in path.read_text().splitlines()] if path.exists() else []


def _cloud_ids(client: BingoCloudClient) -> tuple[set[str], set[str]]:
    return {v.volume_id for v in client.describe_volumes()}, {
        i.instance_id for i in client.describe_instances()
    }


def _disk_restore(backed_up: BackedUp, name: str, hooks: dict[str, Any]) -> tuple[Any, Any]:
    spec = load_restore_spec(
        backed_up.spec(
            name=name,
            kind="disk",
            target={"disks": [{"volume": backed_up.data_volume, "name": name}]},
            options=hooks,
        )
    )
    state = restore_disk(spec=spec, confirm=verification_code(spec), return_state=True)
    return state, state.result(raise_on_failure=False)


def test_false_precondition_leaves_the_restore_idle_creates_nothing_and_the_post_script_hears_it(
    backed_up: BackedUp, tmp_path: Path
) -> None:
    log = tmp_path / "hooks.log"
    before = _cloud_ids(backed_up.registered.client)
    state, result = _disk_restore(
        backed_up,
        "gated",
        {
            "precondition": _recorder(log, "test -e /nonexistent/maintenance-window"),
            "pre_script": _recorder(log),
            "post_script": _recorder(log),
        },
    )
    # The guide's "idle": not failed, not completed; the run's state says so by name.
    assert state.is_cancelled() and state.name == "Idle", (state.type, state.name)
    message = state.message or ""
    assert "precondition" in message and "test -e /nonexistent/maintenance-window" in message
    assert "does not hold" in message and "is idle and created nothing" in message
    assert result["status"] == "idle"
    assert _cloud_ids(backed_up.registered.client) == before
    vm = backed_up.instance.name
    # The pre-script never ran; the post-script was told the restore is idle, and why.
    heard = _heard(log)
    assert [h[:4] for h in heard] == [
        ["precondition", "restore", "", vm],
        ["post_script", "restore", "idle", vm],
    ]
    assert "precondition" in heard[1][4]


def test_a_precondition_that_cannot_run_fails_the_restore_rather_than_idling(
    backed_up: BackedUp, tmp_path: Path
) -> None:
    """Exit 127 (command not found) is a fault to fix, not an answer: the run fails and says so."""
    before = _cloud_ids(backed_up.registered.client)
    state, _ = _disk_restore(backed_up, "typo", {"precondition": "no-such-precondition-command"})
    assert state.is_failed()
    assert "exited with status 127" in (state.message or "") and "nothing was created" in (
        state.message or ""
    )
    assert _cloud_ids(backed_up.registered.client) == before


def test_job_list_and_the_restore_command_say_idle(backed_up: BackedUp, tmp_path: Path) -> None:
    """A run of the restore job (as its worker runs it) whose precondition is false: `job list`
    shows the job's last run as Idle; `restore disk` says idle and exits 1 (nothing restored)."""
    name = f"idle-{uuid.uuid4().hex[:8]}"
    spec_data = backed_up.spec(
        name=name,
        kind="disk",
        target={"disks": [{"volume": backed_up.data_volume}]},
        schedule={"kind": "manual"},
        options={"precondition": "exit 1"},
    )
    spec = load_restore_spec(spec_data)
    spec_file = tmp_path / "idle.yaml"
    spec_file.write_text(yaml.safe_dump(spec_data))
    typed = CliRunner().invoke(
        app, ["restore", "disk", str(spec_file), "--confirm", verification_code(spec)], terminal_width=250
    )
    assert typed.exit_code == 1, typed.output
    assert f"restore {name} is idle and created nothing" in " ".join(typed.output.split())
    job = create_job(spec, None, work_pool=f"bb-idle-{uuid.uuid4().hex[:8]}")  # no worker serves it
    try:
        code = verification_code(spec)
        with get_client(sync_client=True) as client:
            run = client.create_flow_run_from_deployment(job.deployment_id, parameters={"confirm": code})
        state = run_flow(
            restore_disk, flow_run=run, parameters={"spec": spec, "confirm": code}, return_type="state"
        )
        assert isinstance(state, State) and state.name == "Idle"
        listed = CliRunner().invoke(app, ["job", "list"], catch_exceptions=False, terminal_width=250)
        assert listed.exit_code == 0, listed.output
        row = next(line for line in listed.output.splitlines() if name in line)
        assert "Idle (" in row
    finally:
        delete_job(name)


def test_pre_and_post_scripts_frame_the_restore_and_the_post_script_runs_after_a_failure(
    backed_up: BackedUp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "hooks.log"
    hooks = {"precondition": _recorder(log), "pre_script": _recorder(log), "post_script": _recorder(log)}
    client = backed_up.registered.client
    vm = backed_up.instance.name

    state, result = _disk_restore(backed_up, "framed", hooks)
    assert state.is_completed(), state.message
    [restored] = [v for v in client.describe_volumes() if v.name == "framed"]
    assert (
        sha256(backed_up.registered.volume_file(restored.volume_id)) == backed_up.sha[backed_up.data_volume]
    )
    assert [h[:4] for h in _heard(log)] == [
        ["precondition", "restore", "", vm],
        ["pre_script", "restore", "", vm],
        ["post_script", "restore", "ok", vm],
    ]

    log.unlink()
    volumes_before, _ = _cloud_ids(client)

    def broken_attach(self: BingoCloudClient, *args: object, **kwargs: object) -> object:
        raise CloudError("injected: attach refused", code="InternalError")

    monkeypatch.setattr(BingoCloudClient, "attach_volume", broken_attach)
    state, result = _disk_restore(backed_up, "doomed", hooks)
    assert state.is_failed()
    assert result["status"] == "failed"
    assert _cloud_ids(client)[0] == volumes_before  # the half-made volume was removed
    heard = _heard(log)
    assert [h[:4] for h in heard] == [
        ["precondition", "restore", "", vm],
        ["pre_script", "restore", "", vm],
        ["post_script", "restore", "failed", vm],
    ]
    assert "injected: attach refused" in heard[2][4]
