"""`bingobackup backup run` with a worker's fork server ready on the machine: the command is
forked from it and the operator sees what the command prints in its own process (progress,
summary table, one-line errors, exit status); with no server answering it runs in its
own process; commands other than `backup run` are never handed over."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from support.flow import POOL_PASSPHRASE, Registered
from support.sim_admin import injected_faults

from bingobackup.cli.handoff import HANDOFF_ENV, advert_path, advertisement, handed_over
from catalog import Catalog


class ForkServer:
    def __init__(self, process: subprocess.Popen[bytes], log: Path, advert: Path) -> None:
        self.process, self.log, self.advert = process, log, advert

    def lines(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def fork_server(registered: Registered, tmp_path: Path) -> Iterator[ForkServer]:
    """The fork server `worker start` starts, advertised under this session's home."""
    advert = advert_path(Path(os.environ["BINGOBACKUP_HOME"]), f"test-{uuid.uuid4().hex[:8]}")
    socket_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"bb-fork-{uuid.uuid4().hex[:8]}"
    socket_dir.mkdir(mode=0o700)
    log = tmp_path / "fork-server.log"
    command = [sys.executable, "-m", "bingobackup.cli.forkserver", "--socket", str(socket_dir / "s.sock")]
    with log.open("wb") as out:
        process = subprocess.Popen([*command, "--advert", str(advert)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not advert.exists():  # written once its imports are done and it serves
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)  # the pace of looking for the file
        yield ForkServer(process, log, advert)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        advert.unlink(missing_ok=True)
        shutil.rmtree(socket_dir, ignore_errors=True)


def backup_run(spec: Path, **env: str) -> tuple[int, str]:
    """(exit code, output) of `bingobackup backup run SPEC` as an operator runs it."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("bingobackup")), "backup", "run", str(spec)],
        env={**os.environ, "BINGOBACKUP_POOL_PASSPHRASE": POOL_PASSPHRASE, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stdout


def catalog_sets(registered: Registered) -> set[str]:
    with Catalog([(registered.pool, str(registered.pool_dir), None)]) as cat:
        frame = cat.list_sets()
    return set(frame["set_id"]) if len(frame) else set()


def test_backup_run_is_forked_from_the_ready_fork_server_with_the_same_output_and_exit(
    registered: Registered, fork_server: ForkServer, tmp_path: Path
) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump(registered.spec(name="handed-over", content=[{"vm": "linux_local"}])))

    code, output = backup_run(spec)
    assert code == 0, output
    set_id = re.search(r"backup set: (\S+)", output)
    assert set_id is not None, output
    assert re.search(r"linux_local \(i-\w+\).* ok ", output), output
    assert set_id[1] in catalog_sets(registered)
    started = re.search(
        r"command `bingobackup backup run` started as forked process (\d+)", fork_server.lines()
    )
    assert started is not None, fork_server.lines()
    assert f"(process {started[1]}) ended: exit status 0" in fork_server.lines()

    # An operator's error: the same single line and exit status 2 as in the command's own process.
    spec.write_text(yaml.safe_dump(registered.spec(name="handed-over", content=[{"vm": "no-such-vm"}])))
    forked = backup_run(spec)
    here = backup_run(spec, **{HANDOFF_ENV: "0"})
    assert forked[0] == here[0] == 2, (forked, here)
    assert forked[1] == here[1], (forked, here)
    assert forked[1].startswith("Error: ") and "no-such-vm" in forked[1], forked[1]
    assert fork_server.lines().count("started as forked process") == 2, fork_server.lines()


@pytest.mark.parametrize("handoff", ["1", "0"], ids=["forked", "own-process"])
def test_ctrl_c_ends_the_run_and_exits_130_forked_or_not(
    registered: Registered, fork_server: ForkServer, tmp_path: Path, handoff: str
) -> None:
    """SIGINT (Ctrl-C) to the command reaches the forked child: the run ends (not Completed)
    and the command exits 130, as in its own process."""
    name = f"interrupted-{uuid.uuid4().hex[:8]}"
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump(registered.spec(name=name, content=[{"vm": "linux_local"}])))
    # Each snapshot takes 20 s to be asked for: the run is interrupted while it waits.
    with injected_faults(registered.sim, {"latency_ms": 20_000, "actions": ["CreateSnapshot"]}):
        command = subprocess.Popen(
            [str(Path(sys.executable).with_name("bingobackup")), "backup", "run", str(spec)],
            env={**os.environ, "BINGOBACKUP_POOL_PASSPHRASE": POOL_PASSPHRASE, HANDOFF_ENV: handoff},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        with get_client(sync_client=True) as client:
            deadline = time.monotonic() + 120
            while not (runs := client.read_flow_runs(flow_run_filter=by_name(name))) or not (
                runs[0].state is not None and runs[0].state.is_running()
            ):
                assert command.poll() is None and time.monotonic() < deadline, command.communicate()[0]
                time.sleep(0.2)  # the pace of reading the API
            command.send_signal(signal.SIGINT)
            output = command.communicate(timeout=120)[0]
            state = client.read_flow_run(runs[0].id).state
    assert command.returncode == 130, output
    assert state is not None and state.is_final() and not state.is_completed(), state
    forked = re.findall(r"started as forked process \d+|ended: exit status 130", fork_server.lines())
    assert len(forked) == (2 if handoff == "1" else 0), fork_server.lines()


def by_name(name: str) -> FlowRunFilter:
    return FlowRunFilter(name=FlowRunFilterName(like_=name))


def test_with_no_fork_server_answering_backup_run_runs_in_its_own_process(
    registered: Registered, tmp_path: Path
) -> None:
    """What a fork server killed hard leaves: its file, naming a socket nobody listens on."""
    advert = advert_path(Path(os.environ["BINGOBACKUP_HOME"]), f"test-{uuid.uuid4().hex[:8]}")
    advert.parent.mkdir(parents=True, exist_ok=True)
    advert.write_text(json.dumps(advertisement(tmp_path / "gone.sock")))  # this process: alive
    try:
        spec = tmp_path / "job.yaml"
        spec.write_text(yaml.safe_dump(registered.spec(name="in-process", content=[{"vm": "linux_local"}])))
        code, output = backup_run(spec)
    finally:
        advert.unlink()
    assert code == 0, output
    set_id = re.search(r"backup set: (\S+)", output)
    assert set_id is not None and set_id[1] in catalog_sets(registered), output


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["backup", "run", "job.yaml"], True),
        (["--user", "alice", "backup", "run", "job.yaml"], True),
        (["--user=alice", "backup", "run", "job.yaml"], True),
        (["backup", "run", "--help"], False),
        (["job", "start", "nightly"], False),
        (["restore", "run", "job.yaml"], False),
        (["--user", "backup", "run", "job.yaml"], False),
    ],
)
def test_only_backup_run_is_handed_over(argv: list[str], expected: bool) -> None:
    assert handed_over(argv) is expected
