"""The process work pool that runs jobs, one work queue per backup host.

A job's deployment sits on the queue named after its backup host (the instance id), so only
the worker started on that host (`bingobackup worker start --host ID`) runs it: a backup host
can attach snapshot volumes only of its own cluster.
"""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

DEFAULT_WORK_POOL = "bingobackup"
# A worker polls its queue every PREFECT_WORKER_QUERY_SECONDS (10 s by default) and Prefect
# itself calls a worker offline after 3 missed heartbeats of 30 s: the same 90 s here.
WORKER_SILENCE = timedelta(seconds=90)
# The command the pool's worker starts for each flow run, instead of Prefect's `python -m
# prefect.engine`: the fork client (bingobackup/cli/forkclient.py), which has the worker's
# fork server fork the run's process from one that imported Prefect and the flows already.
# The pool is shared by every backup host and their interpreters may live in different
# places, so the paths come from the environment `bingobackup worker start` gives its worker
# (and so its runs); a worker started otherwise runs the engine as Prefect would.
FLOW_RUN_COMMAND = (
    "/bin/sh -c '"
    'if [ -n "$BINGOBACKUP_FORK_CLIENT" ]; then '
    'exec "$BINGOBACKUP_FORK_PYTHON" -S -I "$BINGOBACKUP_FORK_CLIENT" "$@"; fi; '
    'exec python3 -m prefect.engine "$@"'
    "' prefect.engine"
)


def work_pool_name() -> str:
    """The work pool of every job: BINGOBACKUP_WORK_POOL, else `bingobackup`."""
    return os.environ.get("BINGOBACKUP_WORK_POOL") or DEFAULT_WORK_POOL


def job_template() -> dict[str, Any]:
    """Prefect's process job template with FLOW_RUN_COMMAND as the runs' command."""
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    template["variables"]["properties"]["command"]["default"] = FLOW_RUN_COMMAND
    return template


def ensure_work_pool(client: SyncPrefectClient, name: str) -> None:
    """Create the process work pool `name` with `job_template()` when missing; give a pool
    made before the fork server (Prefect's default command) our runs' command."""
    from prefect.workers.process import ProcessWorker

    try:
        existing = client.read_work_pool(name)
    except ObjectNotFound:
        existing = None
    if existing is not None:
        command = existing.base_job_template.get("variables", {}).get("properties", {}).get("command", {})
        if command.get("default") is None and existing.type == ProcessWorker.type:
            client.update_work_pool(name, WorkPoolUpdate(base_job_template=job_template()))
        return
    # Another command may create it at the same moment: that is as good.
    with contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(
            WorkPoolCreate(
                name=name,
                type=ProcessWorker.type,
                base_job_template=job_template(),
                description="bingobackup jobs; one work queue per backup host (its instance id)",
            )
        )


def ensure_work_queue(client: SyncPrefectClient, pool: str, queue: str) -> None:
    """Create `queue` in `pool` when missing: Prefect records a worker's polls only on a queue
    that exists, and a backup host has none before its first job (it would show offline)."""
    with contextlib.suppress(ObjectAlreadyExists):
        client.create_work_queue(name=queue, work_pool_name=pool)


def queue_last_polled(client: SyncPrefectClient, pool: str, queue: str) -> datetime | None:
    """When a worker last polled `queue` of `pool` (its heartbeat); None if never or no such queue."""
    try:
        return client.read_work_queue_by_name(name=queue, work_pool_name=pool).last_polled
    except ObjectNotFound:
        return None


def polled_recently(last_polled: datetime | None) -> bool:
    """True when that poll is within WORKER_SILENCE: a worker serves the queue (it is online)."""
    return last_polled is not None and datetime.now(UTC) - last_polled < WORKER_SILENCE


def queue_is_served(client: SyncPrefectClient, pool: str, queue: str) -> bool:
    """True when a worker polled `queue` of `pool` recently (see WORKER_SILENCE)."""
    return polled_recently(queue_last_polled(client, pool, queue))


def worker_command(python: str, pool: str, host: str, name: str) -> list[str]:
    """The `prefect worker start` command line that serves one backup host's queue."""
    return [
        python,
        "-m",
        "prefect",
        "worker",
        "start",
        "--pool",
        pool,
        "--work-queue",
        host,
        "--type",
        "process",
        "--name",
        name,
    ]
