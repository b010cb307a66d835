"""The process work pool that runs jobs, one work queue per backup host.

A job's deployment sits on the queue named after its backup host (the instance id), so only
the worker started on that host (`bingobackup worker start --host ID`) runs it: a backup host
can attach snapshot volumes only of its own cluster.
"""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

DEFAULT_WORK_POOL = "bingobackup"
# A worker polls its queue every PREFECT_WORKER_QUERY_SECONDS (10 s by default) and Prefect
# itself calls a worker offline after 3 missed heartbeats of 30 s: the same 90 s here.
WORKER_SILENCE = timedelta(seconds=90)


def work_pool_name() -> str:
    """The work pool of every job: BINGOBACKUP_WORK_POOL, else `bingobackup`."""
    return os.environ.get("BINGOBACKUP_WORK_POOL") or DEFAULT_WORK_POOL


def ensure_work_pool(client: SyncPrefectClient, name: str) -> None:
    """Create the process work pool `name` with Prefect's default job template when missing."""
    from prefect.workers.process import ProcessWorker

    try:
        client.read_work_pool(name)
        return
    except ObjectNotFound:
        pass
    # Another command may create it at the same moment: that is as good.
    with contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(
            WorkPoolCreate(
                name=name,
                type=ProcessWorker.type,
                base_job_template=ProcessWorker.get_default_base_job_template(),
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
