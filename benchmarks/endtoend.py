"""End to end: `bingobackup backup run SPEC.yaml` as a user runs it, against `restic backup`.

Runs inside `benchmarks.one e2e`. The local Prefect server and the simulated BingoCloud are
started first and stay up (as for a user who ran any command before), the image is added as
a VM with `bingobackup sim add-vm`, and cloud, backup hosts and pool are registered as an
admin would. Then, alternating, each round times real CLI processes backing the VM up into
a fresh pool, and `restic backup` of the same image into a fresh repository (both first
backups, both encrypted). Nothing of ours is imported into the measured process.

Ours runs two ways each round: in its own process (BINGOBACKUP_HANDOFF=0: what a machine
without a running worker does), and handed to the fork server of the backup host's worker
(`bingobackup worker start`, running as on a real backup host; cli/handoff.py). The second's
CPU is the command's process plus the forked child's, which the fork server logs.

Our wall time is split from the run's own records in the Prefect API (task-run start and end
times, written by the CLI process's clock, the same clock as ours here):

- start: process launch → the flow run Running (imports, spec and resource checks, server
  connection, flow run creation);
- run setup: flow Running → the VM's task starts (resolve content: the cloud's inventory,
  the job's run slot and tag limits, the progress artifact);
- cloud steps: the VM's task less the data path (snapshot, volume created, attached, detached,
  snapshot deleted, with their task runs);
- data path: first chunk read → last chunk written (the read, dedup and write task runs);
- summary: the VM's task ends → process exit (backup set registered in the catalog, summary
  artifact, flow run ended, the table printed).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from benchmarks.external import Restic
from benchmarks.measure import retire, spawn_measured

MODES = ("own process", "worker fork server")

if TYPE_CHECKING:
    from bingobackup.cloud.client import BingoCloudClient
    from bingobackup.resources.models import BackupHost
    from bingobackup.sim.server import RunningSimulator
    from tasks.blocks import PrefectRegistryStore

POOL_PASSPHRASE = "benchmark pool passphrase"
VM_NAME = "e2e-vm"
PARTS = ("start", "run setup", "cloud steps", "data path", "summary")
# By the task functions (a task run is named after its VM and disk: tasks/backup.py).
VM_TASK = "back_up_vm"
DATA_TASKS = ("read_disk_chunks", "dedup", "write_to_pool")


def cli_command(*args: str) -> list[str]:
    """The installed `bingobackup` command beside this interpreter (what a user types)."""
    script = Path(sys.executable).with_name("bingobackup")
    head = [str(script)] if script.exists() else [sys.executable, "-m", "bingobackup.cli.main"]
    return [*head, *args]


@dataclass
class LocalCloud:
    sim: RunningSimulator
    store: PrefectRegistryStore
    cloud: str
    hosts: dict[str, BackupHost]  # by cluster name
    access_key: str
    secret_key: str

    def client(self) -> BingoCloudClient:
        from bingobackup.cloud.client import BingoCloudClient

        return BingoCloudClient(self.sim.endpoint, self.access_key, self.secret_key)


@contextlib.contextmanager
def local_cloud(work: Path, scenario: str, database: str | None = None) -> Iterator[LocalCloud]:
    """Our local Prefect server (under BINGOBACKUP_HOME=work/home, as the CLI starts it) and a
    simulated BingoCloud in this process, registered; both stopped at the end. `database`: the
    server's PostgreSQL URL, as `bingobackup server start --database URL` keeps it (None: the
    local SQLite file)."""
    os.environ["BINGOBACKUP_HOME"] = str(work / "home")
    os.environ.pop("PREFECT_API_URL", None)  # the CLI processes we start find the server themselves
    from prefect.settings import temporary_settings

    from bingobackup.cli import prefect_server

    if database is not None:
        prefect_server.remember_database(database)
    from bingobackup.resources.simulated import register_simulated_cloud
    from bingobackup.resources.users import LOCAL_ADMIN
    from bingobackup.sim.server import start_simulator
    from tasks.blocks import PrefectRegistryStore

    server = prefect_server.ensure_server()
    try:
        with temporary_settings(updates=prefect_server.client_settings(server)):
            access_key, secret_key = "BENCH" + secrets.token_hex(6).upper(), secrets.token_hex(20)
            sim = start_simulator(work / "sim", access_key, secret_key, scenario=scenario, port=0)
            try:
                store = PrefectRegistryStore()
                cloud, hosts = register_simulated_cloud(
                    store,
                    LOCAL_ADMIN,
                    name="bench",
                    endpoint_port=sim.port,
                    access_key=access_key,
                    secret_key=secret_key,
                    state_dir=sim.state_dir,
                )
                yield LocalCloud(sim, store, cloud.name, hosts, access_key, secret_key)
            finally:
                sim.stop()
    finally:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)
        prefect_server.stop_server()


def new_pool(env: LocalCloud, name: str, location: Path) -> None:
    from bingobackup.resources.pools import create_registered_pool
    from bingobackup.resources.users import LOCAL_ADMIN

    create_registered_pool(
        env.store,
        LOCAL_ADMIN,
        name=name,
        kind="dedup",
        location=location,
        encrypted=True,
        passphrase=POOL_PASSPHRASE,
    )


def _seconds(moment: Any) -> float:
    return float(moment.timestamp())


def _split(launched: float, wall: float) -> dict[str, float]:
    """The latest backup run's parts (see the module's docstring), from the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        run = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)[0]
        only_this = FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
        # The server records task-run states in batches, every second (see prefect_server).
        for _ in range(100):
            tasks = client.read_task_runs(flow_run_filter=only_this)
            ended = {t.task_key.rsplit("-", 1)[0]: t for t in tasks if t.end_time is not None}
            if VM_TASK in ended and all(name in ended for name in DATA_TASKS):
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"the task runs of flow run {run.id} were not all recorded in 20 s")
    if run.start_time is None:
        raise RuntimeError(f"flow run {run.id} has no start time")
    vm = ended[VM_TASK]
    assert vm.start_time is not None and vm.end_time is not None
    data_start = min(_seconds(ended[name].start_time) for name in DATA_TASKS)
    data_end = max(_seconds(ended[name].end_time) for name in DATA_TASKS)
    flow_start, vm_start, vm_end = _seconds(run.start_time), _seconds(vm.start_time), _seconds(vm.end_time)
    data = data_end - data_start
    return {
        "start": flow_start - launched,
        "run setup": vm_start - flow_start,
        "cloud steps": (vm_end - vm_start) - data,
        "data path": data,
        "summary": launched + wall - vm_end,
    }


_FORKED_ENDED = re.compile(
    r"command `bingobackup backup run` \(process \d+\) ended: .*, ([\d.]+) CPU-s after the fork"
)


@contextlib.contextmanager
def backup_host_worker(env: LocalCloud, host: str) -> Iterator[Path]:
    """`bingobackup worker start --host HOST` in the background, as on a backup host, until its
    fork server is ready (its advertisement written); yields the worker's log."""
    from bingobackup.cli.environment import bingobackup_home
    from bingobackup.cli.handoff import advert_path
    from bingobackup.cli.worker import start_background_worker, stop_background_workers

    running = start_background_worker(host)
    try:
        advert = advert_path(bingobackup_home(), host)
        deadline = time.monotonic() + 120
        while not advert.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the worker's fork server was not ready in 120 s:\n{running.log_path.read_text()}"
                )
            time.sleep(0.2)  # the pace of looking for the file
        yield running.log_path
    finally:
        stop_background_workers()


def _forked_cpu(log: Path, before: int) -> float:
    """CPU-s of the child the fork server forked for the latest handed-over command (its line
    is written just after the command's own process learnt the exit status)."""
    deadline = time.monotonic() + 60
    while len(found := _FORKED_ENDED.findall(text := log.read_text(errors="replace"))) <= before:
        if time.monotonic() > deadline:
            tail = "\n".join(text.splitlines()[-15:])
            raise RuntimeError(f"the command was not forked (no fork server line in {log}):\n{tail}")
        time.sleep(0.05)  # the pace of reading the log
    return float(found[-1])


def measure_end_to_end(image: Path, work: Path, rounds: int) -> dict[str, Any]:
    """`rounds` timed CLI backups of each mode and as many restic backups, alternated (see the
    module's docstring)."""
    with (
        local_cloud(work, scenario="demo") as env,
        backup_host_worker(env, env.hosts["cluster-a"].instance_id) as worker_log,
    ):
        subprocess.run(
            cli_command(
                "sim", "add-vm", "--endpoint", env.sim.endpoint, "--name", VM_NAME, "--cluster", "cluster-a",
                "--disk", str(image),
            ),
            check=True,
            capture_output=True,
        )  # fmt: skip
        restic = Restic(work) if Restic.available() else None
        ours: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
        theirs: list[dict[str, float]] = []
        for round_ in range(rounds):

            def run_ours(mode: str, round_: int = round_) -> None:
                forked = mode == "worker fork server"
                pool = f"e2e-pool-{round_}-{MODES.index(mode)}"
                new_pool(env, pool, work / pool)  # each run a first backup into a fresh pool
                spec = work / f"{pool}.yaml"
                spec.write_text(
                    yaml.safe_dump(
                        {
                            "version": 1,
                            "name": "e2e-job",
                            "cloud": env.cloud,
                            "backup_host": env.hosts["cluster-a"].instance_id,
                            "pool": pool,
                            "content": [{"vm": VM_NAME}],
                            "options": {"retry": {"count": 0, "interval_minutes": 0}},
                        }
                    )
                )
                os.sync()  # each side starts without the other's writeback
                before = len(_FORKED_ENDED.findall(worker_log.read_text(errors="replace")))
                launched = time.time()
                measured = spawn_measured(
                    cli_command("backup", "run", str(spec)),
                    env={**os.environ, "BINGOBACKUP_HANDOFF": "1" if forked else "0"},
                )
                wall, cpu = float(measured["wall_seconds"]), float(measured["cpu_seconds"])
                if forked:
                    cpu += _forked_cpu(worker_log, before)
                ours[mode].append({"wall": wall, "cpu": cpu, **_split(launched, wall)})
                retire(work / pool)

            def run_restic(round_: int = round_) -> None:
                if restic is None:
                    return
                restic.reset()  # a first backup, as ours into a fresh pool
                measured = restic.backup(image, f"e2e-{round_}")
                theirs.append(
                    {"wall": float(measured["wall_seconds"]), "cpu": float(measured["cpu_seconds"])}
                )

            steps = [lambda: run_ours(MODES[0]), lambda: run_ours(MODES[1]), run_restic]
            # The order turns every round: each one inherits another's tail.
            for step in steps[round_ % 3 :] + steps[: round_ % 3]:
                step()
        return {
            "ours": ours,
            "restic": theirs,
            "restic_version": restic.version() if restic else "",
            "image_bytes": image.stat().st_size,
        }


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    """Per mode of ours: min and median of every column, and the ratio restic / ours (min to
    min, median to median)."""
    columns = ("wall", "cpu", *PARTS)
    result: dict[str, Any] = {}
    if raw["restic"]:
        walls = [r["wall"] for r in raw["restic"]]
        result["restic_min"] = min(walls)
        result["restic_median"] = statistics.median(walls)
        result["restic_cpu_median"] = statistics.median(r["cpu"] for r in raw["restic"])
    for mode in MODES:
        ours: list[dict[str, float]] = raw["ours"][mode]
        mode_result: dict[str, Any] = {
            "min": {c: min(r[c] for r in ours) for c in columns},
            "median": {c: statistics.median(r[c] for r in ours) for c in columns},
        }
        if raw["restic"]:
            mode_result["ratio_min"] = result["restic_min"] / mode_result["min"]["wall"]
            mode_result["ratio_median"] = result["restic_median"] / mode_result["median"]["wall"]
        result[mode] = mode_result
    return result
