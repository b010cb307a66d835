"""Scheduler throughput: many backup jobs due at the same minute, one worker per backup host.

Runs inside `benchmarks.one scheduler`, on the simulator's `scale` scenario (100 VMs of four
20 GiB disks holding 192 KiB each, half in cluster-a, half in cluster-b, one backup host per
cluster). One job per VM is created as `bingobackup job create` does (`deployments.jobs.
create_job`: a deployment on the host's work queue with a `once` schedule at T, the next
whole minute after creation has time to finish), then `bingobackup worker start --host ID`
is started for each backup host, with Prefect's defaults (polls every 10 s, takes runs due in
the next 10 s). Each flow run's expected start (T) is then compared with:

- picked up: when the worker claimed it (its Pending state);
- started: its `start_time`, when its own process set it Running (forked from the worker's
  fork server, which imported Prefect and the flows once; `python -m prefect.engine`, which
  imports them itself, when the fork server is unreachable).

`limit` > 0 sets that concurrency limit on each host's work queue (runs over it wait,
Scheduled, for a free slot): every run is a process of its own, and on a small machine 100 of
them at once do not fit in memory. A backup host's real data parallelism is bounded inside
each run by the jobs' tag concurrency limits (docs/jobs.md), so the queue's limit only paces
how many run processes exist at once.

`database` is where the Prefect server keeps its data: `sqlite` (the local server's default
file) or `postgresql`, a throwaway PostgreSQL cluster (Debian's package, started as the tests
start theirs: tests/support/postgres.py) given to the server as `bingobackup server start
--database URL` does, as a team server runs (docs/deploy.md).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import statistics
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.endtoend import LocalCloud, cli_command, local_cloud, new_pool
from benchmarks.measure import REPO_ROOT
from bingobackup.cli.forkserver import default_max_starting

POOL = "sched-pool"
# Creating a job took 0.14-1.7 s on this machine depending on its load; T is the first whole
# minute at least this far ahead, and creation must end 20 s before T.
CREATION_BASE, CREATION_PER_JOB = timedelta(seconds=40), timedelta(seconds=1.0)
# How long after T runs may take to finish before the measurement gives up on them.
FINISH_TIMEOUT = 1200.0
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
DATABASES = ("sqlite", "postgresql")


@contextlib.contextmanager
def _server_database(kind: str) -> Iterator[str | None]:
    """The database URL for the server (None: its local SQLite file)."""
    if kind == "sqlite":
        yield None
        return
    if kind != "postgresql":
        raise ValueError(f"unknown database {kind!r}; choose one of {', '.join(DATABASES)}")
    from tests.support.postgres import running_postgres

    with running_postgres(secrets.token_urlsafe(16)) as url:
        yield url


def _due_at(now: datetime, jobs: int) -> datetime:
    later = now + CREATION_BASE + jobs * CREATION_PER_JOB
    return later.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _create_jobs(env: LocalCloud, count: int, due: datetime) -> None:
    from bingobackup.specs.job import load_job_spec
    from deployments.jobs import create_job

    client = env.client()
    hosts = {host.cluster_id: host.instance_id for host in env.hosts.values()}
    vms = sorted(
        (i for i in client.describe_instances() if i.name.startswith("scale-vm-")), key=lambda i: i.name
    )
    if len(vms) < count:
        raise RuntimeError(f"the scale scenario has {len(vms)} VMs, fewer than the {count} jobs asked for")
    for vm in vms[:count]:
        name = f"sched-{vm.name}"
        spec = {
            "version": 1,
            "name": name,
            "cloud": env.cloud,
            "backup_host": hosts[vm.cluster_id],
            "pool": POOL,
            "content": [{"vm": vm.name}],
            "schedule": {"kind": "once", "at": due.strftime("%Y-%m-%dT%H:%M:%S"), "timezone": "UTC"},
            "options": {"retry": {"count": 0, "interval_minutes": 0}},
        }
        create_job(load_job_spec(spec), None)


def _limit_queues(hosts: list[str], limit: int) -> None:
    from prefect.client.orchestration import get_client

    from deployments.workpool import work_pool_name

    with get_client(sync_client=True) as client:
        for host in hosts:
            queue = client.read_work_queue_by_name(name=host, work_pool_name=work_pool_name())
            client.update_work_queue(id=queue.id, concurrency_limit=limit)


@contextlib.contextmanager
def _workers(hosts: list[str], logs: Path) -> Iterator[None]:
    """`bingobackup worker start --host ID` for each host, stopped (SIGTERM to each worker's
    own process group, which holds the flow-run processes it started) at the end."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        for host in hosts:
            log = (logs / f"worker-{host}.log").open("wb")
            started.append(
                subprocess.Popen(
                    cli_command("worker", "start", "--host", host),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=REPO_ROOT,  # the deployments' entrypoints are modules of this checkout
                    start_new_session=True,
                )
            )
        yield
    finally:
        for process in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _served_by(hosts: list[str], give_up: float) -> float:
    """When every host's queue was first seen polled by its worker (or `give_up`)."""
    from prefect.client.orchestration import get_client

    from deployments.workpool import queue_is_served, work_pool_name

    with get_client(sync_client=True) as client:
        while time.time() < give_up:
            if all(queue_is_served(client, work_pool_name(), host) for host in hosts):
                return time.time()
            time.sleep(1)
    return give_up


def _runs() -> list[Any]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return list(client.read_flow_runs(limit=200))  # the most the API gives at once


def _timings(runs: list[Any]) -> list[dict[str, Any]]:
    from prefect.client.orchestration import get_client

    rows = []
    with get_client(sync_client=True) as client:
        for run in runs:
            pending = next(
                (s.timestamp for s in client.read_flow_run_states(run.id) if s.type.value == "PENDING"), None
            )
            expected = run.expected_start_time.timestamp()
            rows.append(
                {
                    "name": run.name,
                    "state": run.state.type.value if run.state else "",
                    "picked_up_lag": pending.timestamp() - expected if pending else None,
                    "start_lag": run.start_time.timestamp() - expected if run.start_time else None,
                    "run_seconds": (run.end_time - run.start_time).total_seconds()
                    if run.start_time and run.end_time
                    else None,
                    # The work directory, the runs' logs with it, goes at the end: keep why.
                    "message": (run.state.message or "") if run.state else "",
                }
            )
    return rows


def measure_scheduler(work: Path, jobs: int, limit: int, database: str = "sqlite") -> dict[str, Any]:
    with _server_database(database) as url, local_cloud(work, scenario="scale", database=url) as env:
        new_pool(env, POOL, work / POOL)
        created = datetime.now(UTC)
        due = _due_at(created, jobs)
        _create_jobs(env, jobs, due)
        created_seconds = (datetime.now(UTC) - created).total_seconds()
        if datetime.now(UTC) > due - timedelta(seconds=20):
            raise RuntimeError(
                f"creating {jobs} jobs took {created_seconds:.0f} s, past the time they were due; "
                "raise CREATION_PER_JOB in benchmarks/scheduler.py"
            )
        hosts = sorted(host.instance_id for host in env.hosts.values())
        if limit > 0:
            _limit_queues(hosts, limit)
        logs = work / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with _workers(hosts, logs):
            ready = _served_by(hosts, due.timestamp() + 60)
            deadline = due.timestamp() + FINISH_TIMEOUT
            while True:
                runs = [r for r in _runs() if r.deployment_id is not None]
                if len(runs) >= jobs and all(r.state and r.state.type.value in TERMINAL for r in runs):
                    break
                if time.time() > deadline:
                    break  # the rows say which runs never started or never ended
                time.sleep(5)
        rows = _timings(runs)
    return {
        "jobs": jobs,
        "hosts": len(hosts),
        "limit": limit,
        "database": database,
        "max_starting": default_max_starting(),  # the workers' fork servers read the same environment
        "due": due.isoformat(),
        "create_seconds": created_seconds,
        "workers_ready_before_due": due.timestamp() - ready,
        "runs": rows,
    }


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = raw["runs"]

    def lags(key: str) -> list[float]:
        return sorted(float(r[key]) for r in rows if r[key] is not None)

    started, picked = lags("start_lag"), lags("picked_up_lag")
    durations = lags("run_seconds")
    return {
        "runs": len(rows),
        "completed": sum(r["state"] == "COMPLETED" for r in rows),
        "failed": sum(r["state"] in ("FAILED", "CRASHED") for r in rows),
        "started": len(started),
        "started_within_60s": sum(lag <= 60 for lag in started),
        "start_lag_median": statistics.median(started) if started else None,
        "start_lag_max": started[-1] if started else None,
        "picked_up_within_60s": sum(lag <= 60 for lag in picked),
        "picked_up_lag_median": statistics.median(picked) if picked else None,
        "picked_up_lag_max": picked[-1] if picked else None,
        "run_seconds_median": statistics.median(durations) if durations else None,
    }
