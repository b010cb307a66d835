"""`bingobackup job …`: backup and restore jobs as Prefect deployments (create, list, show, start, edit,
clone, delete, free-slots). The same jobs are visible and startable in the Prefect UI."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import typer
import yaml
from rich.table import Table

from bingobackup.cli.common import acting_user_name, console, prefect_api, registry

if TYPE_CHECKING:
    from deployments.jobs import JobInfo
    from deployments.kinds import JobSpec
    from deployments.runs import JobRun

app = typer.Typer(
    help="Backup and restore jobs: job specs as scheduled Prefect deployments.", no_args_is_help=True
)


def _local(moment: datetime | None, zone: str) -> str:
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z") if moment else "—"


def _checked_spec(spec_path: Path) -> JobSpec:
    """The spec file (backup or restore, told by its shape), validated, with its cloud, backup
    host and pool usable by the acting user, whom the job records as the owner its runs act as."""
    from deployments.kinds import load_any_spec

    return _checked(load_any_spec(spec_path))


def _checked(spec: JobSpec) -> JobSpec:
    from deployments.jobs import check_job_resources

    with registry() as (store, user):
        check_job_resources(store, user, spec)
    return spec


def _report(job: JobInfo, verb: str, ui_url: str) -> None:
    from prefect.client.orchestration import get_client

    from deployments.runs import upcoming_runs
    from deployments.workpool import queue_is_served

    console.print(f"Job [bold]{job.name}[/] {verb}: {job.schedule_description}")
    console.print(f"  deployment {job.deployment_id} on work pool {job.work_pool}, queue {job.work_queue}")
    with get_client(sync_client=True) as client:
        upcoming = upcoming_runs(client, job.deployment_id, 1)
        served = queue_is_served(client, job.work_pool or "", job.work_queue or "")
    if upcoming:
        console.print(f"  next run: {_local(upcoming[0].expected_start, job.spec.schedule.timezone)}")
    console.print(f"  in the Prefect UI: {ui_url}/deployments/deployment/{job.deployment_id}")
    _code_notice(job)
    if not served:
        console.print(
            f"[yellow]No worker serves backup host {job.work_queue} yet: runs wait until one does. "
            f"Start it on that host with `bingobackup worker start --host {job.work_queue}`.[/]"
        )


def _code_notice(job: JobInfo) -> None:
    """A restore job's runs wait for its verification code: say so, and show the code."""
    from deployments.kinds import restore_code

    code = restore_code(job.spec)
    if code:
        console.print(
            f"  [bold]Verification code {code}[/]: each run pauses until it is typed in the Prefect UI "
            "(the run's Resume form); nothing is created before."
        )


def _retention_notice(spec: JobSpec) -> None:
    """A job with a retention section is pruned by its pool's prune deployment (issue 23): make
    sure it exists (a pool registered before maintenance schedules has none yet), deployed on
    the host recorded for the pool's maintenance, else on this job's backup host (it reaches
    the pool: the job was checked); say so, or say that nothing prunes it."""
    from bingobackup.resources.pools import find_pool
    from bingobackup.specs.job import BackupJobSpec
    from deployments.maintenance import apply_pool_maintenance, list_maintenance
    from deployments.schedules import describe_schedule

    if not isinstance(spec, BackupJobSpec) or spec.retention is None:
        return
    with registry() as (store, _user):
        registration = find_pool(store, spec.pool)
    schedule = registration.maintenance.prune
    if schedule is None:
        console.print(
            f"[yellow]Pool {spec.pool}'s prune schedule is off: this job's retention applies only when "
            f"`bingobackup prune --job {spec.name} --yes` runs. An admin turns it on with "
            f"`bingobackup pool set-maintenance {spec.pool} --prune daily@01:00`.[/]"
        )
        return
    if not any(m.task == "prune" for m in list_maintenance(spec.pool)):
        host = registration.maintenance.host or spec.backup_host
        apply_pool_maintenance(spec.pool, registration.maintenance, host)
    console.print(
        f"  retention: pool {spec.pool}'s prune deployment applies it, {describe_schedule(schedule)}"
    )


@app.command()
def create(spec: Path = typer.Argument(..., help="Backup or restore job spec (YAML)")) -> None:
    """Validate a backup or restore spec and create its deployment (an `immediate` job also starts now).

    The job records you (BINGOBACKUP_USER) as its owner: its runs act as you, whatever user a
    run started in the Prefect UI names."""
    job_spec = _checked_spec(spec)
    with prefect_api() as server:
        from deployments.jobs import create_job

        job = create_job(job_spec, acting_user_name())
        _report(job, "created", server.ui_url)
        _retention_notice(job_spec)


@app.command()
def edit(
    name: str = typer.Argument(..., help="Job to change"),
    spec: Path = typer.Argument(
        ..., help="The job's new spec (YAML); `job show NAME --spec` prints the current"
    ),
) -> None:
    """Replace a job's spec and schedule; the deployment and its run history stay. You become the
    job's owner: its runs act as you from now on."""
    job_spec = _checked_spec(spec)
    with prefect_api() as server:
        from deployments.jobs import edit_job

        job = edit_job(name, job_spec, acting_user_name())
        _report(job, "changed", server.ui_url)
        _retention_notice(job_spec)


@app.command()
def clone(
    name: str = typer.Argument(..., help="Job to copy"),
    new_name: str = typer.Option(..., "--name", help="Name of the new job"),
) -> None:
    """Create a new job with the spec and schedule of an existing one, owned by you."""
    with prefect_api() as server:
        from deployments.jobs import clone_job, read_job

        _checked(read_job(name).spec)  # the copy acts as you: only with what you may use
        job = clone_job(name, new_name, acting_user_name())
        _report(job, f"created as a copy of {name}", server.ui_url)


@app.command()
def delete(
    name: str = typer.Argument(..., help="Job to delete"),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation"),
) -> None:
    """Delete a job (its deployment and planned runs). Its backup sets stay in the pool."""
    if not yes:
        typer.confirm(f"Delete job {name}? Its backup sets are kept.", abort=True)
    with prefect_api():
        from deployments.jobs import delete_job

        delete_job(name)
    console.print(f"Job [bold]{name}[/] deleted; its backup sets are kept in the pool.")


def _runs_table(runs: list[JobRun], title: str, zone: str) -> Table:
    table = Table("run", "state", "scheduled", "started", "ended", "message", title=title)
    for run in runs:
        table.add_row(
            run.name,
            run.state,
            _local(run.expected_start, zone),
            _local(run.started, zone),
            _local(run.ended, zone),
            run.message[:80],
        )
    return table


@app.command("list")
def list_() -> None:
    """The jobs and the pools' maintenance: schedule, next run, last run's state, pool."""
    with prefect_api():
        from prefect.client.orchestration import get_client

        from deployments.jobs import list_jobs
        from deployments.maintenance import list_maintenance
        from deployments.runs import recent_runs, upcoming_runs

        jobs = list_jobs()
        maintenance = list_maintenance()
        table = Table("name", "kind", "schedule", "next run", "last run", "pool", "backup host", title="Jobs")
        # (name, kind, schedule kind, zone, deployment, pool, host) of every row
        rows = [
            (
                j.name,
                j.kind.label,
                j.schedule_kind,
                j.spec.schedule.timezone,
                j.deployment_id,
                j.spec.pool,
                j.spec.backup_host,
            )
            for j in jobs
        ] + [
            (m.name, m.label, m.schedule_kind, m.timezone, m.deployment_id, m.pool, m.host or "—")
            for m in maintenance
        ]
        with get_client(sync_client=True) as client:
            for name, kind, schedule_kind, zone, deployment_id, pool, host in rows:
                upcoming = upcoming_runs(client, deployment_id, 1)
                last = recent_runs(client, deployment_id, 1)
                table.add_row(
                    name,
                    kind,
                    schedule_kind,
                    _local(upcoming[0].expected_start, zone) if upcoming else "—",
                    f"{last[0].state} ({_local(last[0].expected_start, zone)})" if last else "never ran",
                    pool,
                    host,
                )
    console.print(table if rows else "No jobs yet: create one with `bingobackup job create SPEC.yaml`.")


@app.command()
def show(
    name: str = typer.Argument(..., help="Job to show"),
    spec: bool = typer.Option(False, "--spec", help="Print only the job spec as YAML (to edit it)"),
    runs: int = typer.Option(5, help="How many upcoming and recent runs to list"),
) -> None:
    """A job's schedule (as Prefect holds it), next runs, recent runs and spec."""
    with prefect_api() as server:
        from prefect.client.orchestration import get_client

        from deployments.jobs import read_job
        from deployments.runs import recent_runs, upcoming_runs

        job = read_job(name)
        if spec:
            typer.echo(yaml.safe_dump(job.spec.model_dump(mode="json", by_alias=True), sort_keys=False))
            return
        with get_client(sync_client=True) as client:
            upcoming = upcoming_runs(client, job.deployment_id, runs)
            recent = recent_runs(client, job.deployment_id, runs)
    zone = job.spec.schedule.timezone
    console.print(f"{job.kind.label.capitalize()} job [bold]{job.name}[/]: {job.schedule_description}")
    _code_notice(job)
    console.print(f"  cloud {job.spec.cloud}, backup host {job.spec.backup_host}, pool {job.spec.pool}")
    console.print(
        f"  runs as {job.user or 'the local admin'} (its recorded owner: who created or last edited it); "
        f"tags {', '.join(job.tags)}"
    )
    console.print(f"  deployment {job.deployment_id} (work pool {job.work_pool}, queue {job.work_queue})")
    for rule in job.schedules:
        console.print(f"  Prefect schedule: {rule.replace(chr(10), ' ')}", highlight=False)
    console.print(f"  {server.ui_url}/deployments/deployment/{job.deployment_id}")
    console.print(_runs_table(upcoming, "Next runs", zone) if upcoming else "Next runs: none planned")
    console.print(_runs_table(recent, "Recent runs", zone) if recent else "Recent runs: none yet")


@app.command()
def start(
    name: str = typer.Argument(..., help="Job to run now"),
    wait: bool = typer.Option(False, "--wait", help="Wait for the run to finish; exit 1 unless it completed"),
    timeout: float = typer.Option(3600, help="With --wait: give up waiting after this many seconds"),
) -> None:
    """Start a run of the job now; the worker of its backup host executes it."""
    with prefect_api() as server:
        from prefect.client.orchestration import get_client

        from deployments.jobs import read_job, start_job
        from deployments.runs import wait_for_run
        from deployments.workpool import queue_is_served

        job = read_job(name)
        run = start_job(name)
        console.print(
            f"Run [bold]{run.name}[/] of job {name} started: {server.ui_url}/runs/flow-run/{run.id}"
        )
        _code_notice(job)
        with get_client(sync_client=True) as client:
            if not queue_is_served(client, job.work_pool or "", job.work_queue or ""):
                console.print(
                    f"[yellow]No worker serves backup host {job.work_queue}: the run waits until "
                    f"`bingobackup worker start --host {job.work_queue}` runs on it.[/]"
                )
            if not wait:
                return
            final = wait_for_run(client, run.id, timeout)
    console.print(f"Run {final.name}: {final.state}" + (f" — {final.message}" if final.message else ""))
    if final.state_type != "COMPLETED":
        raise typer.Exit(1)


@app.command("free-slots")
def free_slots(name: str = typer.Argument(..., help="Job (or spec name) whose runs' slots to free")) -> None:
    """Free the concurrency slots a killed run of the job still holds, so the next run starts at once,
    and start again the VMs a killed `power_off` run of it left stopped.

    Prefect frees them by itself about 75 s after the run died; use this only when no run of
    the job is going (a live run keeps working, but no longer counts against the limits, and
    a VM it stopped for its snapshot is started again).
    """
    with prefect_api():
        from deployments.jobs import free_job_slots
        from tasks.power import start_vms_left_stopped

        held, holders = free_job_slots(name)
        left_stopped = start_vms_left_stopped(name, acting_user_name())
    for left in left_stopped:
        console.print(
            f"{left.vm.describe()} {left.note}", style="red" if left.still_stopped else "yellow", markup=False
        )
    if not held:
        console.print(f"No task of job {name} held a slot; its limits (and its run slot) were reset.")
        return
    table = Table("tag", "slots held", "by flow run", title=f"Slots freed for job {name}")
    for slots in held:
        runs = sorted(
            f"{run.name} ({run.state_name})"
            if (run := holders.get(task_run))
            else f"task run {task_run} (gone)"
            for task_run in set(slots.task_runs)
        )
        if slots.unleased:
            runs.append(f"{slots.unleased} with no holder (the Prefect server restarted meanwhile)")
        table.add_row(slots.tag, f"{slots.count} of {slots.limit}", ", ".join(runs))
    console.print(table)
    console.print("The job's next run sets its limits again.")
