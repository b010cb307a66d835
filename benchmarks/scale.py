"""Orchestration at scale, measured inside `benchmarks.one scale` against a running local server.

On the simulator's `scale` scenario (two clusters of 50 VMs, each VM 4 sparse 20 GiB disks
holding 192 KiB of data, a backup host per cluster), for each number of VMs asked for:

- the flow: `run_backup_now` of one job per cluster used (the first VMs of cluster-a, then of
  cluster-b, each job on its cluster's backup host), with the issue's limits (4 VMs, 4 per
  node, 4 disks per VM), each into a fresh registered pool; two jobs run one after the other,
  and again both at once;
- the engine: `backup_disk` of the same volumes' files (STATE/volumes/<id>.raw) into a fresh
  pool, as many disks at once as the jobs' limits allow, no cloud and no Prefect: what the
  same bytes cost on their own.

And the CLI's fixed start cost while that server runs: `bingobackup --help` (imports only),
and commands that find the server under BINGOBACKUP_HOME and ask it something, each a fresh
process timed from spawn to exit.
"""

from __future__ import annotations

import contextvars
import os
import resource
import secrets
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.measure import retire, spawn_measured

if TYPE_CHECKING:
    from bingobackup.cloud.models import Instance
    from bingobackup.resources.store import RegistryStore
    from bingobackup.sim.server import RunningSimulator

POOL_PASSPHRASE = "benchmark pool passphrase"
# The limits of the job that hung in issue 22: 16 disks at once on each backup host.
LIMITS = {"parallel_vms": 4, "parallel_vms_per_node": 4, "parallel_disks_per_vm": 4}
PER_HOST = LIMITS["parallel_vms"] * LIMITS["parallel_disks_per_vm"]  # disks at once per backup host
CLUSTERS = ("cluster-a", "cluster-b")
CLI_COMMANDS = {
    "bingobackup --help": ["--help"],
    "bingobackup server status": ["server", "status"],
    "bingobackup pool list": ["pool", "list"],
}


def cli_start_cost(runs: int, env: dict[str, str]) -> dict[str, list[float]]:
    """Wall seconds of each run of each of `CLI_COMMANDS`, run in turn `runs` times (a fresh
    process each, timed from spawn to exit with perf_counter)."""
    command = str(Path(sys.executable).with_name("bingobackup"))
    times: dict[str, list[float]] = {name: [] for name in CLI_COMMANDS}
    for _ in range(runs):
        for name, args in CLI_COMMANDS.items():
            times[name].append(float(spawn_measured([command, *args], env=env)["wall_seconds"]))
    return times


def _jobs_for(count: int, vms: dict[str, list[Instance]]) -> list[tuple[str, list[Instance]]]:
    """`count` VMs as one job per cluster: cluster-a's first, then cluster-b's, split evenly
    once one cluster is not enough."""
    per_cluster = len(vms[CLUSTERS[0]])
    if count > per_cluster * len(CLUSTERS):
        raise ValueError(f"the scale scenario has {per_cluster * len(CLUSTERS)} VMs; {count} asked for")
    if count <= per_cluster:
        return [(CLUSTERS[0], vms[CLUSTERS[0]][:count])]
    half = -(-count // 2)
    return [(CLUSTERS[0], vms[CLUSTERS[0]][:half]), (CLUSTERS[1], vms[CLUSTERS[1]][: count - half])]


def _engine_seconds(
    sim: RunningSimulator, jobs: list[tuple[str, list[Instance]]], pool_dir: Path, at_once: bool
) -> float:
    """Seconds to back up every disk of the jobs' VMs with the engine alone, from the volumes'
    files, at the jobs' concurrency: each job's VMs × disks per VM at once, the jobs together
    or one after the other as the flow runs them."""
    from benchmarks.engine import new_pool
    from bingobackup.mover.backup import backup_disk
    from bingobackup.pools import open_pool

    new_pool(pool_dir, POOL_PASSPHRASE)
    pool = open_pool(pool_dir, POOL_PASSPHRASE)

    def one(volume_id: str) -> None:
        path = sim.state_dir / "volumes" / f"{volume_id}.raw"
        size = path.stat().st_size
        writer = pool.open_disk_writer("engine", volume_id, size)
        backup_disk(path, writer, size_bytes=size, chunk_size=pool.chunk_size)

    groups = [jobs] if at_once else [[job] for job in jobs]
    started = time.perf_counter()
    for group in groups:
        volumes = [b.volume_id for _, vms in group for vm in vms for b in vm.block_devices]
        with ThreadPoolExecutor(max_workers=len(group) * PER_HOST) as executor:
            list(executor.map(one, volumes))
    return time.perf_counter() - started


def _flow_seconds(
    store: RegistryStore,
    cloud: str,
    hosts: dict[str, str],
    jobs: list[tuple[str, list[Instance]]],
    work: Path,
    label: str,
    at_once: bool,
) -> float:
    """Wall seconds of the jobs' `run_backup_now`, a thread each, started together or one after
    the other; every job must end ok with every VM backed up."""
    from bingobackup.resources.pools import create_registered_pool
    from bingobackup.resources.users import LOCAL_ADMIN
    from bingobackup.specs.job import load_job_spec
    from flows.backup import run_backup_now

    specs = []
    for cluster, vms in jobs:
        pool = f"scale-{label}-{cluster}"
        create_registered_pool(
            store,
            LOCAL_ADMIN,
            name=pool,
            kind="dedup",
            location=work / pool,
            encrypted=True,
            passphrase=POOL_PASSPHRASE,
        )
        specs.append(
            load_job_spec(
                {
                    "version": 1,
                    "name": pool,
                    "cloud": cloud,
                    "backup_host": hosts[cluster],
                    "pool": pool,
                    "content": [{"vm": vm.name} for vm in vms],
                    "options": {**LIMITS, "retry": {"count": 0, "interval_minutes": 0}},
                }
            )
        )
    failures: list[str] = []

    def run(spec: Any, expected: int) -> None:
        state = run_backup_now(spec)
        result = state.result(raise_on_failure=False)
        if not isinstance(result, dict) or result.get("status") != "ok":
            failures.append(f"{spec.name}: {state.message or result}")
        elif len(result.get("rows", [])) != expected:
            failures.append(f"{spec.name}: {len(result['rows'])} VMs backed up of {expected}")

    # Each thread runs in a copy of this context: Prefect's settings (the server's URL) live in
    # a context variable, and a bare thread would start a temporary server of its own.
    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(run, spec, len(vms)), name=spec.name)
        for spec, (_, vms) in zip(specs, jobs, strict=True)
    ]
    started = time.perf_counter()
    for group in [threads] if at_once else [[thread] for thread in threads]:
        for thread in group:
            thread.start()
        for thread in group:
            thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError("a scale backup did not succeed: " + "; ".join(failures))
    for spec in specs:
        retire(work / spec.pool)
    return seconds


def run_scale(
    work: Path, counts: list[int], transition_delay: float, cli_runs: int, rounds: int
) -> dict[str, Any]:
    """Every measured figure of the scale rows (see the module's docstring): every size in turn,
    `rounds` times over, so each size meets the host at more than one moment."""
    from benchmarks.flowrun import CloudWaitClock, local_server

    with local_server(work) as server:
        from bingobackup.cloud.client import BingoCloudClient
        from bingobackup.resources.simulated import register_simulated_cloud
        from bingobackup.resources.users import LOCAL_ADMIN
        from bingobackup.sim.server import start_simulator
        from tasks.blocks import PrefectRegistryStore

        access_key, secret_key = "BENCH" + secrets.token_hex(6).upper(), secrets.token_hex(20)
        sim = start_simulator(
            work / "sim", access_key, secret_key, scenario="scale", port=0, transition_delay=transition_delay
        )
        try:
            store = PrefectRegistryStore()
            cloud, hosts = register_simulated_cloud(
                store,
                LOCAL_ADMIN,
                name="bench-scale",
                endpoint_port=sim.port,
                access_key=access_key,
                secret_key=secret_key,
                state_dir=sim.state_dir,
            )
            client = BingoCloudClient(sim.endpoint, access_key, secret_key)
            names = {c.cluster_id: c.name for c in client.describe_clusters()}
            vms: dict[str, list[Instance]] = {cluster: [] for cluster in CLUSTERS}
            for vm in sorted(client.describe_instances(), key=lambda i: i.name):
                if vm.name.startswith("scale-vm-"):
                    vms[names[vm.cluster_id]].append(vm)
            # A user's shell: the server found under BINGOBACKUP_HOME, as the CLI finds it.
            cli_env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
            cli = cli_start_cost(cli_runs, cli_env)
            clock = CloudWaitClock()
            host_ids = {cluster: host.instance_id for cluster, host in hosts.items()}

            def point(count: int, round_: int, at_once: bool) -> dict[str, Any]:
                jobs = _jobs_for(count, vms)
                label = f"{count}-{'together' if at_once else 'apart'}-{round_}"
                engine = _engine_seconds(sim, jobs, work / f"engine-pool-{label}", at_once)
                retire(work / f"engine-pool-{label}")
                clock.take()
                load = os.getloadavg()[0]
                cpu, server_cpu = _cpu_seconds(), _cpu_seconds(server.pid)
                flow = _flow_seconds(store, cloud.name, host_ids, jobs, work, label, at_once)
                return {
                    "vms": count,
                    "round": round_,
                    "disks": sum(len(vm.block_devices) for _, group in jobs for vm in group),
                    "hosts": len(jobs),
                    "at_once": at_once,
                    "flow_seconds": flow,
                    "engine_seconds": engine,
                    "cloud_wait_seconds": clock.take(),
                    "cpu_seconds": _cpu_seconds() - cpu,
                    "server_cpu_seconds": _cpu_seconds(server.pid) - server_cpu,
                    "load_average": load,
                }

            # Jobs of two hosts run one after the other (as on two machines, each job alone on
            # its host) and, beside that, both at once in this one process.
            with clock.counting():
                points = [
                    point(count, round_, at_once)
                    for round_ in range(rounds)
                    for count in counts
                    for at_once in ([False, True] if count > len(vms[CLUSTERS[0]]) else [False])
                ]
            return {
                "transition_delay": transition_delay,
                "limits": LIMITS,
                "cli": cli,
                "points": points,
                "data_bytes_per_disk": _data_bytes(sim, vms[CLUSTERS[0]][0]),
            }
        finally:
            sim.stop()


def _cpu_seconds(pid: int | None = None) -> float:
    """CPU seconds (user and system) used so far by this process, or by process `pid`."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime … cstime


def _data_bytes(sim: RunningSimulator, vm: Instance) -> int:
    """Bytes of data (not holes) in the VM's first disk's file: what each disk holds."""
    from bingobackup.sparse import data_extents

    path = sim.state_dir / "volumes" / f"{vm.block_devices[0].volume_id}.raw"
    return sum(length for _, length in data_extents(path))
