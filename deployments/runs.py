"""A job's runs as Prefect sees them: upcoming (scheduled by Prefect), recent, and waiting for one.

Upcoming times are never computed here: the Prefect server expands the deployment's
schedules into scheduled flow runs (the same call its scheduler service makes, idempotent),
and we read those runs back. What `job show` prints is what the workers will run.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from pydantic import BaseModel

from bingobackup.errors import BingoBackupError
from tasks.paging import read_all

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

# Far enough for a monthly job on a few chosen months, or a `once` job a few years ahead.
_HORIZON = timedelta(days=5 * 366)


class JobRun(BaseModel):
    """One flow run of a job, as an operator reads it."""

    id: UUID
    name: str
    state: str
    state_type: str
    expected_start: datetime | None
    started: datetime | None
    ended: datetime | None
    message: str = ""

    @classmethod
    def from_flow_run(cls, run: FlowRun) -> JobRun:
        state = run.state
        return cls(
            id=run.id,
            name=run.name,
            state=state.name if state else "unknown",
            state_type=state.type.value if state else "unknown",
            expected_start=run.expected_start_time,
            started=run.start_time,
            ended=run.end_time,
            message=(state.message or "") if state else "",
        )


def _deployment(deployment_id: UUID) -> DeploymentFilter:
    return DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))


def schedule_upcoming(client: SyncPrefectClient, deployment_id: UUID, count: int) -> None:
    """Ask the server to create the next `count` scheduled runs of each schedule now, instead of
    on its scheduler's next loop (up to a minute later)."""
    start = datetime.now(UTC)
    client.request(
        "POST",
        "/deployments/{id}/schedule",
        path_params={"id": deployment_id},
        json={
            "start_time": start.isoformat(),
            "end_time": (start + _HORIZON).isoformat(),
            "min_runs": count,
            "max_runs": count,
        },
    ).raise_for_status()


def drop_stale_runs(client: SyncPrefectClient, deployment_id: UUID, parameters: dict[str, object]) -> int:
    """Delete the deployment's scheduled runs made from an earlier version of it (their
    parameters are not `parameters`); returns how many. Prefect deletes a deployment's
    scheduled runs when its schedule changes, but its scheduler service may be inserting runs
    of the old schedule at that moment, and they would run the old spec."""
    scheduled = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
    )
    stale = [
        run
        for run in read_all(
            lambda offset, limit: client.read_flow_runs(
                deployment_filter=_deployment(deployment_id),
                flow_run_filter=scheduled,
                offset=offset,
                limit=limit,
            )
        )
        if run.auto_scheduled and run.parameters != parameters
    ]
    for run in stale:
        client.delete_flow_run(run.id)
    return len(stale)


def upcoming_runs(client: SyncPrefectClient, deployment_id: UUID, count: int = 5) -> list[JobRun]:
    """The next `count` runs of a deployment, scheduled by Prefect, earliest first."""
    if count <= 0:
        return []
    schedule_upcoming(client, deployment_id, count)
    runs = client.read_flow_runs(
        deployment_filter=_deployment(deployment_id),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
            expected_start_time=FlowRunFilterExpectedStartTime(after_=datetime.now(UTC) - timedelta(hours=1)),
        ),
        sort=FlowRunSort.EXPECTED_START_TIME_ASC,
        limit=count,
    )
    return [JobRun.from_flow_run(run) for run in runs]


def recent_runs(client: SyncPrefectClient, deployment_id: UUID, count: int = 5) -> list[JobRun]:
    """The latest `count` runs that left the schedule (running or finished), newest first."""
    runs = client.read_flow_runs(
        deployment_filter=_deployment(deployment_id),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(not_any_=[StateType.SCHEDULED]))
        ),
        sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        limit=count,
    )
    return [JobRun.from_flow_run(run) for run in runs]


class RunTimeout(BingoBackupError):
    pass


def wait_for_run(
    client: SyncPrefectClient, run_id: UUID, timeout: float, poll_seconds: float = 1.0
) -> JobRun:
    """Poll a flow run until it reaches a final state; RunTimeout names the last state seen."""
    deadline = time.monotonic() + timeout
    while True:
        run = JobRun.from_flow_run(client.read_flow_run(run_id))
        if run.state_type in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
            return run
        if time.monotonic() >= deadline:
            raise RunTimeout(
                f"Run {run.name} ({run_id}) is still {run.state} after {timeout:.0f} s. It goes on without "
                "this command: follow it in the Prefect UI or with `bingobackup job show`."
            )
        time.sleep(poll_seconds)
