"""Flow runs of a job, as `bingobackup worker start` starts them: forked from the worker's fork
server (which imported Prefect and the flows once), paced (a burst of runs is forked one
start slot at a time) and all completed, their INFO lines in the run's Logs tab,
cancelled from the API by stopping the forked process; with the fork server gone, a run
starts the old way (`python -m prefect.engine`) and still completes; a pool made before the
fork server gets its command."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.states import Cancelling
from support.flow import POOL_PASSPHRASE, Registered, run_log_messages
from support.sim_admin import injected_faults
from support.worker import running_worker, worker_environment
from typer.testing import CliRunner

from bingobackup.cli.main import app
from bingobackup.cli.prefect_server import ServerInfo

runner = CliRunner()


class Worker:
    """`bingobackup worker start` for the cluster-a backup host and the log it writes (the
    fork server's lines and the runs' streamed output included)."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def wait_for_line(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.log.read_text(errors="replace"))
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no line matching {pattern!r} in the worker's log:\n{self.log.read_text()}"
                )
            time.sleep(0.2)  # the pace of reading the log, not a wait for an event


@pytest.fixture
def forked_worker(registered: Registered, job_pool: str, tmp_path: Path) -> Iterator[Worker]:
    env = worker_environment(job_pool, BINGOBACKUP_POOL_PASSPHRASE=POOL_PASSPHRASE)
    log = tmp_path / "worker.log"
    with running_worker(registered.hosts["cluster-a"], env, log) as process:
        yield Worker(process, log)


def start_job(registered: Registered, tmp_path: Path, vm: str, *options: str) -> uuid.UUID:
    """Create a manual job backing up `vm`, start it; the run's id."""
    name = f"fork-{uuid.uuid4().hex[:8]}"
    spec_file = tmp_path / f"{name}.yaml"
    spec_file.write_text(yaml.safe_dump(registered.spec(name=name, content=[{"vm": vm}])))
    for command in (["job", "create", str(spec_file)], ["job", "start", name, *options]):
        result = runner.invoke(app, command, catch_exceptions=False)
        assert result.exit_code == 0 or "--wait" in options, result.output
    return uuid.UUID(result.output.split("/runs/flow-run/")[1].split()[0])


def final_state(run_id: uuid.UUID, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(run_id).state
            assert state is not None
            if state.is_final() or time.monotonic() > deadline:
                return state.type.value
            time.sleep(0.5)  # the pace of reading the API


def test_a_jobs_run_is_forked_logs_to_the_api_and_is_cancelled_by_stopping_its_process(
    registered: Registered, forked_worker: Worker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BINGOBACKUP_POOL_PASSPHRASE", POOL_PASSPHRASE)
    forked_worker.wait_for_line(r"fork server: process \d+ ready on ")

    run_id = start_job(registered, tmp_path, "linux_local", "--wait", "--timeout", "240")
    assert final_state(run_id) == "COMPLETED"
    pid = forked_worker.wait_for_line(rf"flow run {run_id} started as forked process (\d+)")[1]
    forked_worker.wait_for_line(rf"flow run {run_id} \(process {pid}\) ended: exit status 0")
    # The run's INFO lines reached the API: the child re-read the logging settings of the
    # run's environment (API logging, the bingobackup loggers) after the fork.
    vm = next(i for i in registered.client.describe_instances() if i.name == "linux_local")
    messages = run_log_messages(run_id, until=f"VM linux_local ({vm.instance_id}) finished")
    assert any(m.startswith(f"VM linux_local ({vm.instance_id}) finished: read ") for m in messages), messages
    assert "no fork server" not in forked_worker.log.read_text()

    # Each snapshot takes 20 s to be asked for: the run is cancelled while it waits.
    with injected_faults(registered.sim, {"latency_ms": 20_000, "actions": ["CreateSnapshot"]}):
        run_id = start_job(registered, tmp_path, "linux_local")
        pid = forked_worker.wait_for_line(rf"flow run {run_id} started as forked process (\d+)")[1]
        with get_client(sync_client=True) as client:
            deadline = time.monotonic() + 60
            while (state := client.read_flow_run(run_id).state) is not None and not state.is_running():
                assert time.monotonic() < deadline, f"run {run_id} never went Running: {state}"
                time.sleep(0.2)  # the pace of reading the API
            client.set_flow_run_state(run_id, Cancelling(), force=True)
        assert final_state(run_id) == "CANCELLED"
        # The worker signalled the client, which passed it on: the forked process ended.
        forked_worker.wait_for_line(rf"flow run {run_id} \(process {pid}\) ended: ")


def test_with_the_fork_server_killed_a_run_starts_as_before_and_completes(
    registered: Registered, forked_worker: Worker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BINGOBACKUP_POOL_PASSPHRASE", POOL_PASSPHRASE)
    server = int(forked_worker.wait_for_line(r"fork server: process (\d+) ready on ")[1])
    os.kill(server, signal.SIGKILL)
    run_id = start_job(registered, tmp_path, "linux_local", "--wait", "--timeout", "240")
    assert final_state(run_id) == "COMPLETED"
    log = forked_worker.log.read_text()
    assert log.count("no fork server for this flow run") == 1, log
    assert "starting it with `python -m prefect.engine` instead" in log
    assert f"flow run {run_id} started as forked process" not in log


def test_runs_claimed_at_once_are_forked_one_start_at_a_time_and_all_complete(
    registered: Registered, job_pool: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pacing (one start slot): a run is forked only once the one before it reported Running,
    # so a burst never has every run starting at once on the host's cores.
    monkeypatch.setenv("BINGOBACKUP_POOL_PASSPHRASE", POOL_PASSPHRASE)
    # Due before the worker exists: its first poll claims both at once.
    run_ids = [str(start_job(registered, tmp_path, vm)) for vm in ("linux_local", "raw_disk_vm")]
    env = worker_environment(
        job_pool, BINGOBACKUP_POOL_PASSPHRASE=POOL_PASSPHRASE, BINGOBACKUP_FORK_MAX_STARTING="1"
    )
    log = tmp_path / "worker.log"
    with running_worker(registered.hosts["cluster-a"], env, log):
        states = [final_state(uuid.UUID(run_id)) for run_id in run_ids]
        text = log.read_text(errors="replace")
    assert states == ["COMPLETED"] * 2, text
    steps = [
        (step, run_id)
        for run_id, step in re.findall(
            r"flow run (\S+) (?:\(process \d+\) )?(started as forked|is Running)", text
        )
        if run_id in run_ids
    ]
    assert [step for step, _ in steps] == ["started as forked", "is Running"] * 2, text
    assert {run_id for _, run_id in steps} == set(run_ids)
    assert "waits for a start slot" in text, text  # the burst was queued, not forked at once
    assert "has not reported Running" not in text, text


def test_a_pool_made_with_prefects_default_command_gets_the_fork_clients(prefect_server: ServerInfo) -> None:
    """A pool created before the fork server (Prefect's default job template: no command)
    gets FLOW_RUN_COMMAND from the next `worker start` or `job create`; a command an admin
    set stays theirs."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.workers.process import ProcessWorker

    from deployments.workpool import FLOW_RUN_COMMAND, ensure_work_pool

    def command(client: SyncPrefectClient, name: str) -> object:
        return client.read_work_pool(name).base_job_template["variables"]["properties"]["command"]["default"]

    old, custom = f"bb-old-{uuid.uuid4().hex[:8]}", f"bb-custom-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        for name, default in ((old, None), (custom, "/opt/site/run-flow")):
            template = ProcessWorker.get_default_base_job_template()
            template["variables"]["properties"]["command"]["default"] = default
            client.create_work_pool(WorkPoolCreate(name=name, type="process", base_job_template=template))
        try:
            ensure_work_pool(client, old)
            ensure_work_pool(client, custom)
            assert command(client, old) == FLOW_RUN_COMMAND
            assert command(client, custom) == "/opt/site/run-flow"
        finally:
            client.delete_work_pool(old)
            client.delete_work_pool(custom)


def test_a_forked_child_sets_logging_up_again_only_when_what_it_reads_differs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child keeps the server's logging set-up (≈ 50 ms) only while the run's environment
    leaves its inputs as they were: a level in the settings, a PREFECT_LOGGING_* override, or
    an operator's logging file makes it set logging up again."""
    from prefect.settings import PREFECT_LOGGING_LEVEL, PREFECT_LOGGING_SETTINGS_PATH, temporary_settings

    from bingobackup.cli.forkserver import _logging_inputs

    inherited = _logging_inputs()
    assert inherited is not None and _logging_inputs() == inherited
    with temporary_settings(updates={PREFECT_LOGGING_LEVEL: "DEBUG"}):
        assert _logging_inputs() != inherited
    monkeypatch.setenv("PREFECT_LOGGING_LOGGERS_BINGOBACKUP_LEVEL", "DEBUG")
    assert _logging_inputs() != inherited
    monkeypatch.delenv("PREFECT_LOGGING_LOGGERS_BINGOBACKUP_LEVEL")
    own = tmp_path / "logging.yml"
    own.write_text("version: 1\n")
    with temporary_settings(updates={PREFECT_LOGGING_SETTINGS_PATH: own}):
        assert _logging_inputs() is None
