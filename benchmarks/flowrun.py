"""The Prefect backup flow on the benchmark image, against a local server already running.

Runs inside `benchmarks.one flow`: starts our local Prefect server (as the CLI does, under a
temporary BINGOBACKUP_HOME) and the simulated BingoCloud, adds a VM whose only disk is the
image, registers cloud, hosts and pool as an admin would, and then times two runs of the same
job, each into a fresh pool:

- the engine job: the flow's steps called directly, without Prefect (resolve content,
  snapshot, stage the volume on the backup host, read/dedup/write, detach and delete,
  register the backup set in the catalog) — what the backup costs on its own;
- the flow: `bingobackup-backup` with task runs, tag concurrency limits, artifacts and states.

"The flow adds" is the second less the first, round by round, with the time each job waited
for the cloud set apart (`CloudWaitClock`): the simulator copies the whole volume twice in both
(snapshot, then the volume staged on the backup host), which a real cloud does copy-on-write,
and on this host such a copy takes 0.6 to 3 s at random (fresh memory, writeback), more than
the whole cost of the flow. Both jobs wait for the same cloud steps; the rest is what differs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from benchmarks.measure import peak_rss_bytes, retire

if TYPE_CHECKING:
    from bingobackup.cli.prefect_server import ServerInfo
    from bingobackup.cloud.models import Snapshot
    from bingobackup.sim.server import RunningSimulator
    from bingobackup.specs.job import BackupJobSpec

VM_NAME = "bench-vm"
POOL_PASSPHRASE = "benchmark pool passphrase"
# Alternated rounds, the best of each kept: both sides vary by ±20 % between rounds here
# (the simulator's volume copies, page cache the host reclaimed), and the best of six is stabler.
ROUNDS = 6


def _add_vm(admin_url: str, image: Path) -> str:
    body = json.dumps({"name": VM_NAME, "cluster": "cluster-a", "disks": [str(image)]}).encode()
    request = urllib.request.Request(
        f"{admin_url}/vms", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        return str(json.loads(response.read())["instance_id"])


P = ParamSpec("P")
R = TypeVar("R")


class CloudWaitClock:
    """Seconds this process spends waiting for the cloud in a backup's staging steps (snapshot
    completed; volume available, attached, detached), from every thread, until `take`n."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds = 0.0

    @contextlib.contextmanager
    def counting(self) -> Iterator[CloudWaitClock]:
        """Counts the waits of `bingobackup.jobs.staging`, which both jobs stage through."""
        from bingobackup.jobs import staging

        originals = {name: getattr(staging, name) for name in ("wait_for_snapshot", "wait_for_volume")}
        for name, wait in originals.items():
            setattr(staging, name, self._timed(wait))
        try:
            yield self
        finally:
            for name, wait in originals.items():
                setattr(staging, name, wait)

    def _timed(self, wait: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(wait)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            try:
                return wait(*args, **kwargs)
            finally:
                with self._lock:
                    self._seconds += time.perf_counter() - started

        return timed

    def take(self) -> float:
        """The seconds counted since the last call."""
        with self._lock:
            seconds, self._seconds = self._seconds, 0.0
        return seconds


def _engine_job(sim: RunningSimulator, secret_key: str, pool_dir: Path, spec: BackupJobSpec) -> float:
    """Seconds for the flow's steps called directly (no Prefect) on a registry of our own."""
    from bingobackup.backup.job import DiskOutcome, VmOutcome, prepare_backup_job, snapshot_disks
    from bingobackup.jobs.staging import delete_snapshot, staged_volume
    from bingobackup.mover.backup import backup_disk
    from bingobackup.resources.pools import create_registered_pool
    from bingobackup.resources.simulated import register_simulated_cloud
    from bingobackup.resources.store import InMemoryRegistryStore
    from bingobackup.resources.users import LOCAL_ADMIN
    from tasks.backup import register_backup_set

    store = InMemoryRegistryStore()
    register_simulated_cloud(
        store,
        LOCAL_ADMIN,
        name=spec.cloud,
        endpoint_port=sim.port,
        access_key=sim.access_key,
        secret_key=secret_key,
        state_dir=sim.state_dir,
    )
    create_registered_pool(
        store,
        LOCAL_ADMIN,
        name=spec.pool,
        kind="dedup",
        location=pool_dir,
        encrypted=True,
        passphrase=POOL_PASSPHRASE,
    )
    started = time.perf_counter()
    job = prepare_backup_job(store, LOCAL_ADMIN, spec)
    outcomes = []
    for vm in job.vms:
        vm_started, client = datetime.now(UTC), job.client()
        taken: dict[str, Snapshot] = {}
        disks = []
        try:
            snapshot_disks(client, job, vm, taken)
            for disk in vm.disks:
                snap = taken[disk.volume_id]
                with staged_volume(
                    client, spec.name, snap, job.host.instance_id, job.locator(), timeouts=job.timeouts
                ) as device:
                    result = backup_disk(
                        device,
                        job.pool.open_disk_writer(job.set_id, disk.volume_id, disk.size_bytes),
                        size_bytes=disk.size_bytes,
                        chunk_size=job.pool.chunk_size,
                        channels=spec.options.channels,
                        dedup_mode=spec.options.dedup_mode,
                    )
                disks.append(DiskOutcome(disk=disk, snapshot_id=snap.snapshot_id, result=result))
        finally:
            for snap in taken.values():
                delete_snapshot(client, snap.snapshot_id)
        outcomes.append(
            VmOutcome(vm=vm, status="ok", started_at=vm_started, finished_at=datetime.now(UTC), disks=disks)
        )
    status = register_backup_set.fn(job, outcomes, "engine-baseline", 1)
    if status != "ok":
        raise RuntimeError(f"the benchmark's engine job ended {status}")
    return time.perf_counter() - started


@contextlib.contextmanager
def local_server(work: Path) -> Iterator[ServerInfo]:
    """Our local Prefect server, started as the CLI starts it under BINGOBACKUP_HOME=`work`/home,
    and this process's Prefect client pointed at it; stopped on the way out."""
    os.environ["BINGOBACKUP_HOME"] = str(work / "home")
    os.environ.pop("PREFECT_API_URL", None)
    from prefect.settings import temporary_settings

    from bingobackup.cli import prefect_server

    server = prefect_server.ensure_server()
    os.environ["PREFECT_API_URL"] = server.url
    try:
        with temporary_settings(updates=prefect_server.client_settings(server)):
            yield server
    finally:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)  # the runs' last log lines, before their server goes
        prefect_server.stop_server()


def run_flow_backup(image: Path, work: Path) -> dict[str, Any]:
    with local_server(work):
        return _with_server(image, work)


def _with_server(image: Path, work: Path) -> dict[str, Any]:
    from bingobackup.cloud.client import BingoCloudClient
    from bingobackup.resources.pools import create_registered_pool
    from bingobackup.resources.simulated import register_simulated_cloud
    from bingobackup.resources.users import LOCAL_ADMIN
    from bingobackup.sim.server import start_simulator
    from bingobackup.specs.job import load_job_spec
    from flows.backup import run_backup_now
    from tasks.blocks import PrefectRegistryStore

    access_key, secret_key = "BENCH" + secrets.token_hex(6).upper(), secrets.token_hex(20)
    sim = start_simulator(work / "sim", access_key, secret_key, scenario="demo", port=0)
    try:
        _add_vm(sim.admin_url, image)
        client = BingoCloudClient(sim.endpoint, access_key, secret_key)
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
        vm = next(i for i in client.describe_instances() if i.name == VM_NAME)
        job = {
            "version": 1,
            "name": "bench-job",
            "cloud": cloud.name,
            "backup_host": next(h.instance_id for h in hosts.values() if h.cluster_id == vm.cluster_id),
            "content": [{"vm": VM_NAME}],
            "options": {"retry": {"count": 0, "interval_minutes": 0}},
        }
        # Alternated rounds, each into fresh pools retired after: the simulator's volume copies
        # (GiBs of page cache and writeback) make rounds noisy. The order flips every round
        # (engine then flow, flow then engine): whichever runs second inherits the first one's
        # tail (the server still recording its states, the simulator freeing its copies), and
        # neither side should always get it.
        engine_times: list[float] = []
        flow_times: list[float] = []
        engine_waits: list[float] = []  # seconds each job waited for the cloud
        flow_waits: list[float] = []
        clock = CloudWaitClock()

        def engine_round(round_: int) -> None:
            os.sync()  # each job starts without the previous one's writeback (as every step does)
            engine_times.append(
                _engine_job(
                    sim,
                    secret_key,
                    work / f"engine-pool-{round_}",
                    load_job_spec({**job, "name": "bench-engine-job", "pool": f"bench-pool-{round_}"}),
                )
            )
            engine_waits.append(clock.take())
            # Each job's pool is retired once measured, so the next job writes into recycled
            # page cache, not memory the host reclaimed (see FIRST_ATTEMPTS in runner.py).
            retire(work / f"engine-pool-{round_}")

        def flow_round(round_: int) -> None:
            pool = f"bench-pool-{round_}"
            create_registered_pool(
                store,
                LOCAL_ADMIN,
                name=pool,
                kind="dedup",
                location=work / f"flow-pool-{round_}",
                encrypted=True,
                passphrase=POOL_PASSPHRASE,
            )
            os.sync()
            started = time.perf_counter()
            state = run_backup_now(load_job_spec({**job, "pool": pool}))
            flow_times.append(time.perf_counter() - started)
            flow_waits.append(clock.take())
            result = state.result(raise_on_failure=False)
            if not isinstance(result, dict) or result.get("status") != "ok":
                raise RuntimeError(f"the benchmark's flow run did not succeed: {state.message or result}")
            retire(work / f"flow-pool-{round_}")

        with clock.counting():
            for round_ in range(ROUNDS):
                for step in (engine_round, flow_round) if round_ % 2 == 0 else (flow_round, engine_round):
                    clock.take()  # from here on: this job's waits
                    step(round_)
        return {
            "wall_seconds": min(flow_times),
            "engine_job_seconds": min(engine_times),
            "flow_rounds": flow_times,
            "engine_rounds": engine_times,
            "flow_cloud_waits": flow_waits,
            "engine_cloud_waits": engine_waits,
            "peak_rss_bytes": peak_rss_bytes(),
        }
    finally:
        sim.stop()
