"""Backup and restore jobs as Prefect deployments: create, edit, clone, delete, start, list.

A job is one deployment of the `bingobackup-backup` flow (or, for a restore spec, of
`bingobackup-restore-vm` / `bingobackup-restore-disk`: see `kinds.py`), named after the job,
whose parameter is the job spec (typed, so the Prefect UI shows a form and refuses bad input).
The user its runs act as is not a parameter (the UI lets anybody change those): it is the
owner recorded with the job by whoever created or last edited it, checked against that
user's authorizations then (`tasks.owner`). Its schedule is the spec's schedule mapped by `schedules.py`; it
sits on the work queue of its backup host in the `bingobackup` process work pool.

The flow is registered from source by module entrypoint (`flows.backup.backup`): every
worker has bingobackup installed (it is the agent on the backup host), so nothing has to be
uploaded or cloned per job. `deployments/prefect.yaml` shows the git-pull variant for teams.

A restore job's deployment has no `confirm` parameter: each of its runs pauses until the
operator types the spec's verification code in the Prefect UI. Job names are unique across
the three flows, so `job start NAME` is never ambiguous.

Editing upserts the same deployment (Prefect keeps its id and its run history, replaces the
schedules and drops the runs the old schedules had planned); deleting removes only the
deployment, its notification automation and the job's concurrency limits — backup sets stay
in their pools. When a webhook is configured (`notify.py`), each job's deployment owns an
automation that reports its failed runs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags, FlowFilter, FlowFilterName
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.responses import DeploymentResponse
from prefect.exceptions import ObjectNotFound
from prefect.utilities.callables import parameter_schema
from pydantic import BaseModel

from bingobackup.backup.job import check_dedup_mode
from bingobackup.errors import BingoBackupError
from bingobackup.hooks import hooks_digest, hooks_of
from bingobackup.resources.access import backup_host_for, cloud_for, require_admin
from bingobackup.resources.models import User
from bingobackup.resources.pools import check_backup_host_sees_pool, pool_for
from bingobackup.resources.store import RegistryStore
from bingobackup.specs.job import BackupJobSpec
from bingobackup.specs.schedule import ImmediateSchedule
from deployments.kinds import BACKUP, JOB_KINDS, JobKind, JobSpec, job_kind, load_any_spec
from deployments.notify import drop_job_automation, sync_job_automation
from deployments.runs import JobRun, drop_stale_runs, schedule_upcoming
from deployments.schedules import describe_schedule, once_in_past, prefect_schedules
from deployments.workpool import ensure_work_pool, work_pool_name
from tasks.limits import HeldSlots, crash_holders, delete_tag_limits
from tasks.owner import forget_owner, record_owner, recorded_owner
from tasks.paging import read_all

BACKUP_FLOW_NAME = BACKUP.flow_name
BACKUP_ENTRYPOINT = BACKUP.entrypoint
JOB_TAG = "bingobackup-job"
# Scheduled runs created right away, so `job list` shows the next run at once.
_PLANNED_RUNS = 3


class JobError(BingoBackupError):
    """A job that does not exist, already exists, or cannot be changed as asked."""


class JobInfo(BaseModel):
    """A job as stored in Prefect: its deployment and the spec it runs."""

    name: str
    deployment_id: UUID
    spec: JobSpec
    user: str | None  # the recorded owner its runs act as; None: the local admin
    work_pool: str | None
    work_queue: str | None
    tags: list[str]
    schedules: list[str]  # the RRULE text Prefect holds, one entry per deployment schedule
    created: datetime | None

    @property
    def kind(self) -> JobKind:
        return job_kind(self.spec)

    @property
    def schedule_kind(self) -> str:
        return self.spec.schedule.kind

    @property
    def schedule_description(self) -> str:
        return describe_schedule(self.spec.schedule)


def job_tags(spec: JobSpec) -> list[str]:
    return [JOB_TAG, f"job:{spec.name}", f"pool:{spec.pool}", f"host:{spec.backup_host}"]


def check_job_resources(store: RegistryStore, user: User, spec: JobSpec) -> None:
    """Refuse a job whose cloud, backup host or pool is unknown or not authorized to the user,
    or whose host cannot reach a LAN-free pool, at creation rather than at its first run (the
    run checks again: things change)."""
    cloud_for(store, user, spec.cloud)
    host = backup_host_for(store, user, spec.backup_host)
    pool = pool_for(store, user, spec.pool)
    check_backup_host_sees_pool(pool, host.instance_id)
    if isinstance(spec, BackupJobSpec):
        check_dedup_mode(spec, pool)  # server-side dedup needs a pool that deduplicates
    hooks = hooks_of(spec.options)
    if hooks:
        require_admin(
            user, f"save a job with a {' and a '.join(hooks)} (shell commands run on the backup host)"
        )


def _to_info(client: SyncPrefectClient, deployment: DeploymentResponse) -> JobInfo:
    parameters: dict[str, Any] = dict(deployment.parameters or {})
    if "spec" not in parameters:
        raise JobError(
            f"Deployment {deployment.name} has no `spec` parameter: it was not made by `bingobackup job`."
        )
    # Through the loader, so a spec stored by an older bingobackup is migrated, never refused.
    spec = load_any_spec(dict(parameters["spec"]))
    rrules = [getattr(s.schedule, "rrule", str(s.schedule)) for s in deployment.schedules or []]
    return JobInfo(
        name=deployment.name,
        deployment_id=deployment.id,
        spec=spec,
        user=recorded_owner(client, deployment.id)[1],
        work_pool=deployment.work_pool_name,
        work_queue=deployment.work_queue_name,
        tags=list(deployment.tags or []),
        schedules=rrules,
        created=deployment.created,
    )


def _read(client: SyncPrefectClient, name: str) -> DeploymentResponse | None:
    for kind in JOB_KINDS:
        try:
            return client.read_deployment_by_name(f"{kind.flow_name}/{name}")
        except ObjectNotFound:
            continue
    return None


def _existing(client: SyncPrefectClient, name: str) -> DeploymentResponse:
    deployment = _read(client, name)
    if deployment is None:
        raise JobError(f"No job named '{name}'. See the jobs with `bingobackup job list`.")
    return deployment


def _refuse_past_once(spec: JobSpec) -> None:
    if once_in_past(spec.schedule, datetime.now(UTC)):
        raise JobError(
            f"Job '{spec.name}' is scheduled {describe_schedule(spec.schedule)}, which is in the past: "
            "it would never run. Give schedule.at a future time, or use `kind: immediate`."
        )


def _apply(client: SyncPrefectClient, spec: JobSpec, user: str | None, anchor: datetime, pool: str) -> UUID:
    """Create or update (same id) the job's deployment and its job-wide concurrency limit."""
    kind = job_kind(spec)
    ensure_work_pool(client, pool)
    flow_id = client.create_flow_from_name(kind.flow_name)
    parameters: dict[str, object] = {"spec": spec.model_dump(mode="json", by_alias=True)}
    schema = parameter_schema(kind.flow).model_dump(exclude_unset=True)
    # Not offered in the UI's run form: a run acts as the recorded owner whatever it is given.
    schema["properties"].pop("user")
    deployment_id = client.create_deployment(
        flow_id=flow_id,
        name=spec.name,
        version=f"job spec v{spec.version}",
        description=(
            f"{kind.label.capitalize()} job {spec.name}: {describe_schedule(spec.schedule)}; "
            f"runs as {user or 'the local admin'}"
        ),
        schedules=prefect_schedules(spec.schedule, anchor),
        parameters=parameters,
        work_pool_name=pool,
        work_queue_name=spec.backup_host,
        tags=job_tags(spec),
        entrypoint=kind.entrypoint,
        pull_steps=[],
        parameter_openapi_schema=schema,
        enforce_parameter_schema=True,
    )
    record_owner(client, deployment_id, spec.name, user, hooks_digest(spec.options))
    # The run refreshes this and adds the per-node and per-VM limits once it knows the VMs.
    client.create_concurrency_limit(
        tag=kind.limit_tag(spec.name), concurrency_limit=spec.options.parallel_vms
    )
    drop_stale_runs(client, deployment_id, parameters)  # an edit's: see there
    schedule_upcoming(client, deployment_id, _PLANNED_RUNS)
    sync_job_automation(client, spec.name, deployment_id)
    return deployment_id


def create_job(spec: JobSpec, user: str | None, *, work_pool: str | None = None) -> JobInfo:
    """A new job owned by `user` (checked against the spec already: `check_job_resources`); an
    `immediate` job also gets a run now. Refuses a name already in use."""
    _refuse_past_once(spec)
    with get_client(sync_client=True) as client:
        if _read(client, spec.name) is not None:
            raise JobError(
                f"A job named '{spec.name}' exists already. Change it with `bingobackup job edit "
                f"{spec.name} SPEC.yaml`, or pick another name."
            )
        deployment_id = _apply(client, spec, user, datetime.now(UTC), work_pool or work_pool_name())
        if isinstance(spec.schedule, ImmediateSchedule):
            client.create_flow_run_from_deployment(deployment_id)
        return _to_info(client, client.read_deployment(deployment_id))


def edit_job(name: str, spec: JobSpec, user: str | None) -> JobInfo:
    """Replace a job's spec: same deployment (id and run history kept), new schedule and
    parameters, and `user` (checked against the spec already) its new owner."""
    if spec.name != name:
        raise JobError(
            f"The spec is named '{spec.name}', not '{name}'. A job keeps its name: use "
            f"`bingobackup job clone {name} --name {spec.name}` then `job delete {name}` to rename."
        )
    _refuse_past_once(spec)
    with get_client(sync_client=True) as client:
        existing = _existing(client, name)
        was = _to_info(client, existing).kind
        if was != job_kind(spec):
            raise JobError(
                f"Job '{name}' is a {was.label} job and the spec is a {job_kind(spec).label} spec: a job "
                f"keeps its kind. Create the new job under another name with `bingobackup job create`."
            )
        # Keep the first creation as the anchor: "every 2 weeks" must not shift on edit.
        anchor = existing.created or datetime.now(UTC)
        pool = existing.work_pool_name or work_pool_name()
        deployment_id = _apply(client, spec, user, anchor, pool)
        return _to_info(client, client.read_deployment(deployment_id))


def clone_job(name: str, new_name: str, user: str | None) -> JobInfo:
    """A new job with the spec of `name` under `new_name`."""
    source = read_job(name)
    data = source.spec.model_dump(mode="json", by_alias=True)
    spec = load_any_spec({**data, "name": new_name})
    return create_job(spec, user, work_pool=source.work_pool)


def delete_job(name: str) -> None:
    """Remove the job's deployment, its planned runs and its concurrency limits.

    Finished runs stay in Prefect's history and backup sets stay in their pools.
    """
    with get_client(sync_client=True) as client:
        deployment = _existing(client, name)
        tag = _to_info(client, deployment).kind.limit_tag(name)
        drop_job_automation(client, deployment.id)
        client.delete_deployment(deployment.id)
        forget_owner(client, deployment.id)
    delete_tag_limits(tag)


def sync_notifications() -> list[str]:
    """After the webhook was set or cleared: every job's automation in step with it. The names
    of the jobs that now notify."""
    with get_client(sync_client=True) as client:
        return [job.name for job in list_jobs() if sync_job_automation(client, job.name, job.deployment_id)]


def free_job_slots(name: str) -> tuple[list[HeldSlots], dict[str, FlowRun | None]]:
    """Free the concurrency slots runs of job `name` hold, for after a run was killed (Prefect
    would free them when their leases run out, see `tasks.limits`), and mark the runs that held
    them Crashed; the next run sets the limits again. Works for a job run from a spec file too:
    it needs only the name. (The slots freed, the flow run of each holding task run.)"""
    held = delete_tag_limits(*{kind.limit_tag(name) for kind in JOB_KINDS})
    holders = crash_holders(
        (run for slots in held for run in slots.task_runs), "its slots were freed by hand"
    )
    return held, holders


def start_job(name: str) -> JobRun:
    """A run of the job now (Scheduled for now: the worker of its backup host picks it up)."""
    with get_client(sync_client=True) as client:
        deployment = _existing(client, name)
        run = client.create_flow_run_from_deployment(deployment.id)
        return JobRun.from_flow_run(run)


def read_job(name: str) -> JobInfo:
    with get_client(sync_client=True) as client:
        return _to_info(client, _existing(client, name))


def list_jobs() -> list[JobInfo]:
    """Every job (deployment of a backup or restore flow tagged as a job), by name."""
    with get_client(sync_client=True) as client:
        jobs = [
            _to_info(client, deployment)
            for deployment in read_all(
                lambda offset, limit: client.read_deployments(
                    flow_filter=FlowFilter(name=FlowFilterName(any_=[kind.flow_name for kind in JOB_KINDS])),
                    deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[JOB_TAG])),
                    limit=limit,
                    offset=offset,
                )
            )
        ]
    return sorted(jobs, key=lambda job: job.name)
