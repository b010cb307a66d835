"""End to end: `bingobackup backup run SPEC.yaml` as a user runs it, against `restic backup`.

Runs inside `benchmarks.one e2e`. The local Prefect server and the simulated BingoCloud are
started first and stay up (as for a user who ran any command before), the image is added as
a VM with `bingobackup sim add-vm`, and cloud, backup hosts and pool are registered as an
admin would. Then, alternating, each round times one real CLI process backing the VM up into
a fresh pool, and `restic backup` of the same image into a fresh repository (both first
backups, both encrypted). Nothing of ours is imported into the measured process.

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
def local_cloud(work: Path, scenario: str) -> Iterator[LocalCloud]:
    """Our local Prefect server (under BINGOBACKUP_HOME=work/home, as the CLI starts it) and a
    simulated BingoCloud in this process, registered; both stopped at the end."""
    os.environ["BINGOBACKUP_HOME"] = str(work / "home")
    os.environ.pop("PREFECT_API_URL", None)  # the CLI processes we start find the server themselves
    from prefect.settings import temporary_settings

    from bingobackup.cli import prefect_server
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


def measure_end_to_end(image: Path, work: Path, rounds: int) -> dict[str, Any]:
    """`rounds` timed CLI backups and as many restic backups, alternated (see module docstring)."""
    with local_cloud(work, scenario="demo") as env:
        subprocess.run(
            cli_command(
                "sim", "add-vm", "--endpoint", env.sim.endpoint, "--name", VM_NAME, "--cluster", "cluster-a",
                "--disk", str(image),
            ),
            check=True,
            capture_output=True,
        )  # fmt: skip
        restic = Restic(work) if Restic.available() else None
        ours: list[dict[str, float]] = []
        theirs: list[dict[str, float]] = []
        for round_ in range(rounds):
            pool = f"e2e-pool-{round_}"
            new_pool(env, pool, work / pool)
            spec = work / f"e2e-{round_}.yaml"
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

            def run_ours(spec: Path = spec) -> None:
                os.sync()  # each side starts without the other's writeback
                launched = time.time()
                measured = spawn_measured(cli_command("backup", "run", str(spec)))
                wall = float(measured["wall_seconds"])
                ours.append({"wall": wall, "cpu": float(measured["cpu_seconds"]), **_split(launched, wall)})

            def run_restic(round_: int = round_) -> None:
                if restic is None:
                    return
                restic.reset()  # a first backup, as ours into a fresh pool
                measured = restic.backup(image, f"e2e-{round_}")
                theirs.append(
                    {"wall": float(measured["wall_seconds"]), "cpu": float(measured["cpu_seconds"])}
                )

            # The order flips every round: the second inherits the first one's tail.
            for step in (run_ours, run_restic) if round_ % 2 == 0 else (run_restic, run_ours):
                step()
            retire(work / pool)
        return {
            "ours": ours,
            "restic": theirs,
            "restic_version": restic.version() if restic else "",
            "image_bytes": image.stat().st_size,
        }


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    """min and median of every column, and the ratio restic / ours (min to min, median to median)."""
    ours: list[dict[str, float]] = raw["ours"]
    columns = ("wall", "cpu", *PARTS)
    result: dict[str, Any] = {
        "ours_min": {c: min(r[c] for r in ours) for c in columns},
        "ours_median": {c: statistics.median(r[c] for r in ours) for c in columns},
    }
    if raw["restic"]:
        walls = [r["wall"] for r in raw["restic"]]
        result["restic_min"] = min(walls)
        result["restic_median"] = statistics.median(walls)
        result["restic_cpu_median"] = statistics.median(r["cpu"] for r in raw["restic"])
        result["ratio_min"] = result["restic_min"] / result["ours_min"]["wall"]
        result["ratio_median"] = result["restic_median"] / result["ours_median"]["wall"]
    return result
