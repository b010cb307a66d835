"""A pool's maintenance (prune, garbage collection, verify) as scheduled Prefect deployments.

Each task the pool's maintenance schedule turns on is one deployment of its flow
(`bingobackup-prune`, `bingobackup-gc`, `bingobackup-verify`) named `pool-<pool>`, with the
pool as its parameter, the task's schedule mapped as a job's is (`schedules.py`), and the work
queue of the backup host whose worker reaches the pool, in the jobs' work pool. A task turned
off has no deployment: applying the schedule deletes it.

The flows are deployed by entrypoint and flow name, never imported here: the flow is
registered by name and every worker has bingobackup installed (as for jobs, `jobs.py`). The
UI's run form comes from the flow's source (read, not run) when its module is installed.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags, FlowFilter, FlowFilterName
from prefect.client.schemas.responses import DeploymentResponse
from prefect.exceptions import ObjectNotFound
from prefect.utilities.callables import parameter_schema_from_entrypoint
from pydantic import BaseModel

from bingobackup.specs.maintenance import MAINTENANCE_TASKS, MaintenanceTask, PoolMaintenance
from bingobackup.specs.schedule import Schedule
from deployments.runs import schedule_upcoming
from deployments.schedules import describe_schedule, prefect_schedules
from deployments.workpool import ensure_work_pool, work_pool_name
from tasks.paging import read_all

MAINTENANCE_TAG = "bingobackup-maintenance"
_PLANNED_RUNS = 3  # as for jobs: `job list` shows the next run at once


@dataclass(frozen=True)
class MaintenanceFlow:
    """How one maintenance task of a pool becomes a deployment."""

    task: MaintenanceTask
    flow_name: str
    entrypoint: str  # module.function, installed with bingobackup on every worker
    what: str  # what a run does, for the deployment's description

    @property
    def label(self) -> str:
        """The kind `job list` shows."""
        return f"maintenance: {self.task}"


MAINTENANCE_FLOWS: dict[MaintenanceTask, MaintenanceFlow] = {
    "prune": MaintenanceFlow(
        "prune", "bingobackup-prune", "flows.prune.prune", "removes expired backup sets"
    ),
    "gc": MaintenanceFlow(
        "gc", "bingobackup-gc", "flows.gc.collect_garbage", "frees unreferenced chunks and repacks"
    ),
    "verify": MaintenanceFlow(
        "verify", "bingobackup-verify", "flows.verify.verify", "reads and checks the stored chunks"
    ),
}


def deployment_name(pool: str) -> str:
    return f"pool-{pool}"


_SCHEDULE_TAG = "schedule:"


def maintenance_tags(task: MaintenanceTask, pool: str, host: str, schedule: Schedule) -> list[str]:
    # The schedule's kind rides along as a tag: the deployment holds only its RRULE.
    return [
        MAINTENANCE_TAG,
        f"maintenance:{task}",
        f"pool:{pool}",
        f"host:{host}",
        _SCHEDULE_TAG + schedule.kind,
    ]


class MaintenanceInfo(BaseModel):
    """One maintenance deployment as Prefect holds it."""

    name: str
    task: MaintenanceTask
    pool: str
    host: str | None  # its work queue: the backup host whose worker runs it
    deployment_id: UUID
    work_pool: str | None
    parameters: dict[str, Any]
    schedules: list[str]  # the RRULE text Prefect holds
    schedule_kind: str  # as a job's: daily, weekly, …
    timezone: str
    description: str

    @property
    def label(self) -> str:
        return MAINTENANCE_FLOWS[self.task].label


def _parameter_schema(entrypoint: str) -> dict[str, Any] | None:
    """The flow's parameter schema read from its source file (not imported, so a maintenance
    flow module's imports never run here); None when the module is not installed."""
    module, _, function = entrypoint.rpartition(".")
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        return None
    if spec is None or spec.origin is None:
        return None
    schema: dict[str, Any] = parameter_schema_from_entrypoint(f"{spec.origin}:{function}").model_dump(
        exclude_unset=True
    )
    return schema


def _read(client: SyncPrefectClient, flow: MaintenanceFlow, pool: str) -> DeploymentResponse | None:
    try:
        return client.read_deployment_by_name(f"{flow.flow_name}/{deployment_name(pool)}")
    except ObjectNotFound:
        return None


def _deploy(
    client: SyncPrefectClient, flow: MaintenanceFlow, pool: str, schedule: Schedule, host: str, work_pool: str
) -> UUID:
    existing = _read(client, flow, pool)
    # Keep the first creation as the anchor: "every 2 weeks" must not shift on a change.
    anchor = existing.created if existing and existing.created else datetime.now(UTC)
    parameters: dict[str, Any] = {"pool": pool}
    schema = _parameter_schema(flow.entrypoint)
    deployment_id = client.create_deployment(
        flow_id=client.create_flow_from_name(flow.flow_name),
        name=deployment_name(pool),
        version="pool maintenance",
        description=f"Maintenance of pool {pool}: {flow.task} {flow.what}; {describe_schedule(schedule)}",
        schedules=prefect_schedules(schedule, anchor),
        parameters=parameters,
        work_pool_name=work_pool,
        work_queue_name=host,
        tags=maintenance_tags(flow.task, pool, host, schedule),
        entrypoint=flow.entrypoint,
        pull_steps=[],
        parameter_openapi_schema=schema,
        enforce_parameter_schema=schema is not None,
    )
    schedule_upcoming(client, deployment_id, _PLANNED_RUNS)
    return deployment_id


def apply_pool_maintenance(
    pool: str, maintenance: PoolMaintenance, host: str, *, work_pool: str | None = None
) -> list[MaintenanceInfo]:
    """Create or update (same id, run history kept) the deployment of each task the schedule
    turns on, on `host`'s work queue; delete those of the tasks turned off. What is deployed now."""
    work_pool = work_pool or work_pool_name()
    with get_client(sync_client=True) as client:
        ensure_work_pool(client, work_pool)
        for task in MAINTENANCE_TASKS:
            flow = MAINTENANCE_FLOWS[task]
            schedule = maintenance.schedule_of(task)
            if schedule is None:
                existing = _read(client, flow, pool)
                if existing is not None:
                    client.delete_deployment(existing.id)
                continue
            _deploy(client, flow, pool, schedule, host, work_pool)
    return list_maintenance(pool)


def delete_pool_maintenance(pool: str) -> None:
    """Remove every maintenance deployment of `pool` (finished runs stay in Prefect's history)."""
    with get_client(sync_client=True) as client:
        for flow in MAINTENANCE_FLOWS.values():
            existing = _read(client, flow, pool)
            if existing is not None:
                client.delete_deployment(existing.id)


def _to_info(deployment: DeploymentResponse, flow_names: dict[UUID, str]) -> MaintenanceInfo:
    task = next(t for t, f in MAINTENANCE_FLOWS.items() if f.flow_name == flow_names[deployment.flow_id])
    schedules, tags = deployment.schedules or [], deployment.tags or []
    return MaintenanceInfo(
        name=deployment.name,
        task=task,
        pool=str((deployment.parameters or {}).get("pool", "")),
        host=deployment.work_queue_name,
        deployment_id=deployment.id,
        work_pool=deployment.work_pool_name,
        parameters=dict(deployment.parameters or {}),
        schedules=[getattr(s.schedule, "rrule", str(s.schedule)) for s in schedules],
        schedule_kind=next((t.removeprefix(_SCHEDULE_TAG) for t in tags if t.startswith(_SCHEDULE_TAG)), "?"),
        timezone=next(
            (str(zone) for s in schedules if (zone := getattr(s.schedule, "timezone", None))), "UTC"
        ),
        description=deployment.description or "",
    )


def list_maintenance(pool: str | None = None) -> list[MaintenanceInfo]:
    """The maintenance deployments (of `pool`, or of every pool), by pool then task."""
    names = [flow.flow_name for flow in MAINTENANCE_FLOWS.values()]
    tags = [MAINTENANCE_TAG] + ([f"pool:{pool}"] if pool else [])
    with get_client(sync_client=True) as client:
        flows = client.read_flows(flow_filter=FlowFilter(name=FlowFilterName(any_=names)))
        flow_names = {flow.id: flow.name for flow in flows}
        deployments = read_all(
            lambda offset, limit: client.read_deployments(
                flow_filter=FlowFilter(name=FlowFilterName(any_=names)),
                deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=tags)),
                limit=limit,
                offset=offset,
            )
        )
        found = [_to_info(d, flow_names) for d in deployments if d.flow_id in flow_names]
    return sorted(found, key=lambda m: (m.pool, MAINTENANCE_TASKS.index(m.task)))
