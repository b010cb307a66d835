"""The backup flow: fan out over VMs and disks under the job's concurrency limits, retry the
VMs that failed, register the backup set, and show operators what happened.

Concurrency limits are Prefect tag limits made from the spec: one tag per job (parallel
VMs), per job and node (parallel VMs per node) and per job and VM (parallel disks per VM);
and one slot per job that the run holds throughout, so a job never runs twice at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar, cast

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE
from prefect.client.schemas.objects import State
from prefect.context import SyncClientContext, get_run_context
from prefect.futures import PrefectFuture
from prefect.states import Cancelled, Failed
from prefect.task_runners import ThreadPoolTaskRunner

from bingobackup.backup.conditions import skip_reason
from bingobackup.backup.job import BackupJob, DiskOutcome, VmOutcome, log_vm_started
from bingobackup.backup.power import LeftStopped, powered_off
from bingobackup.backup.resume import ResumingSink
from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.models import Snapshot
from bingobackup.crashpoints import crash_point
from bingobackup.hooks import HookFailed, hook_env
from bingobackup.jobs.linkretry import LinkRetry
from bingobackup.jobs.staging import delete_snapshot, staged_volume
from bingobackup.mover.stages import DiskPipeline
from bingobackup.resources.discovery import Disk, ResolvedVm
from bingobackup.specs.job import BackupJobSpec
from flows.admission import run_admitted
from flows.jobs import (
    RESULT_STORAGE,
    RUN_THREADS,
    job_run_name,
    job_tag,
    node_tag,
    run_first_hooks,
    run_post_script,
    run_tag,
    unvisited,
    vm_tag,
)
from tasks.backup import (
    dedup,
    prepare_backup,
    read_disk_chunks,
    register_backup_set,
    snapshot,
    write_to_pool,
)
from tasks.limits import JobAlreadyRunningError, crash_dead_runs, ensure_tag_limits, sole_run
from tasks.owner import run_user
from tasks.power import PrefectStoppedVmLedger, start_vms_left_stopped, stop_of_this_run
from tasks.progress import progress_artifact

T = TypeVar("T")


# Every flow of ours names its result storage: Prefect's own default local path, and results
# are not persisted (as by default: runs report through the catalog and their artifacts, and
# the CLI reads the result of the run it started in process). Left unnamed, Prefect asks the
# server for a default storage at each run's start, three requests and two more API clients
# (≈ 20 ms before the first step; measured with a request log).
@dataclass(frozen=True)
class JobTagLimits:
    """A run's tag limits (tag → slots) and those of them that can bind in this run.

    A limit binds only when more task runs share its tag than it has slots. Each tag belongs
    to one job and a job runs once at a time (its run slot), so the only contenders are this
    run's own VMs (job, node) or disks (VM). A task run carries only the tags that can bind:
    every tagged task run takes and gives back a slot lease, two API requests and two events
    on the server, for a limit that could never make it wait (0.05-0.1 s per run of one VM).
    """

    limits: dict[str, int]
    binding: frozenset[str]

    def tags(self, *tags: str) -> list[str]:
        return [tag for tag in tags if tag in self.binding]


def job_tag_limits(job: BackupJob) -> JobTagLimits:
    options, name = job.spec.options, job.spec.name
    limits = {job_tag(name): options.parallel_vms}
    contenders = Counter({job_tag(name): len(job.vms)})
    for vm in job.vms:
        limits[node_tag(name, vm.node_id)] = options.parallel_vms_per_node
        contenders[node_tag(name, vm.node_id)] += 1
        limits[vm_tag(name, vm.instance_id)] = options.parallel_disks_per_vm
        contenders[vm_tag(name, vm.instance_id)] = len(vm.disks)
    return JobTagLimits(limits, frozenset(tag for tag, count in contenders.items() if count > limits[tag]))


@task(
    name="back up disk", task_run_name="back up {disk.volume_id} ({vm.name}, {disk.role})", cache_policy=NONE
)
def back_up_disk(job: BackupJob, vm: ResolvedVm, disk: Disk, snap: Snapshot) -> DiskOutcome:
    """Stage the snapshot on the backup host and stream it through read → dedup → write."""
    client = job.client()
    with staged_volume(
        client, job.spec.name, snap, job.host.instance_id, job.locator(), timeouts=job.timeouts
    ) as device:
        options = job.spec.options
        # A lost link to the pool is ridden out for the reconnect time, resuming at the
        # unacknowledged chunk (guide table 3).
        link = LinkRetry(
            window_seconds=options.reconnect_minutes * 60.0,
            what=f"disk {disk.volume_id} of {vm.name} to pool {job.pool.name}",
        )
        writer = ResumingSink(
            # Opening writes the pool's writer lock: a link lost then is ridden out too.
            link.call(
                lambda: job.pool.open_disk_writer(job.set_id, disk.volume_id, disk.size_bytes),
                "while opening the disk's writer",
            ),
            link,
            buffer_bytes=options.resume_buffer_mib << 20,
            channels=options.channels,
        )
        progress = job.progress
        pipeline = DiskPipeline(
            device,
            writer,
            size_bytes=disk.size_bytes,
            chunk_size=job.pool.chunk_size,
            channels=job.spec.options.channels,
            dedup_mode=job.spec.options.dedup_mode,
            read_limiter=job.read_limiter,
            send_limiter=job.send_limiter,
            progress=(lambda done, _total: progress.update(disk.volume_id, done)) if progress else None,
            cancel=job.watchdog.cancel,
            label=f"{disk.volume_id} ({vm.name}, {disk.role})",
        )
        read = read_disk_chunks.submit(pipeline)
        hashed = dedup.submit(pipeline)
        written = write_to_pool.submit(pipeline)
        result = written.result()
        read.result()
        hashed.result()
    return DiskOutcome(disk=disk, snapshot_id=snap.snapshot_id, result=result)


@task(name="back up VM", task_run_name="back up {vm.name}", cache_policy=NONE)
def back_up_vm(
    job: BackupJob, vm: ResolvedVm, attempt: int, done: list[DiskOutcome], limits: JobTagLimits
) -> VmOutcome:
    """One VM: snapshot its disks, back them up in parallel, always delete the snapshots.

    `done` are the disks an earlier attempt of this run backed up: a retry keeps them and
    backs up only the others (their manifests are committed, and a write-once pool must not
    be asked to replace them). Never raises: a failure becomes a failed outcome so the other
    VMs go on.
    """
    started = datetime.now(UTC)
    client = job.client()
    taken: dict[str, Snapshot] = {}
    disks = {d.disk.volume_id: d for d in done}
    todo = vm.model_copy(update={"disks": [d for d in vm.disks if d.volume_id not in disks]})
    try:
        options = job.spec.options
        reason = skip_reason(
            client, vm, skip_if_free_below=options.skip_if_free_below, power_off=options.power_off
        )
        if reason is not None:
            get_run_logger().warning("VM %s (%s) skipped: %s", vm.name, vm.instance_id, reason)
            return VmOutcome(
                vm=vm,
                status="skipped",
                error=reason,
                started_at=started,
                finished_at=datetime.now(UTC),
                attempts=attempt,
            )
        log_vm_started(vm, attempt, todo.disks)
        _snapshot_disks(job, vm, todo, client, taken)
        errors = _back_up_disks(job, vm, todo, taken, limits, disks)
        status, error = ("failed", "; ".join(errors)) if errors else ("ok", "")
    except Exception as exc:
        status, error = "failed", str(exc)
    finally:
        crash_point("backup.before-snapshot-cleanup")
        _delete_snapshots(client, taken)
    outcome = VmOutcome(
        vm=vm,
        status=status,
        error=error,
        started_at=started,
        finished_at=datetime.now(UTC),
        attempts=attempt,
        disks=[disks[d.volume_id] for d in vm.disks if d.volume_id in disks],
    )
    outcome.log_finished()
    return outcome


def _snapshot_disks(
    job: BackupJob, vm: ResolvedVm, todo: ResolvedVm, client: BingoCloudClient, taken: dict[str, Snapshot]
) -> None:
    """Snapshot the disks still to back up into `taken`, the VM powered off if the job asks."""
    # Power off (guide table 2): stopped for the snapshot only, started again once the
    # disks are captured, whatever happens to the snapshot; the ledger entry made before
    # the stop gets the VM started again should this process die in between.
    stopped = (
        powered_off(client, stop_of_this_run(job, vm), PrefectStoppedVmLedger(), timeout=job.timeouts.attach)
        if job.spec.options.power_off
        else contextlib.nullcontext(False)
    )
    with stopped:
        snapshot(unvisited(job), todo, client, taken)


def _back_up_disks(
    job: BackupJob,
    vm: ResolvedVm,
    todo: ResolvedVm,
    taken: dict[str, Snapshot],
    limits: JobTagLimits,
    disks: dict[str, DiskOutcome],
) -> list[str]:
    """Back up each of `todo`'s disks from its snapshot as the VM's limit admits, each
    outcome into `disks`; returns what went wrong, one line per failed disk."""
    tag = vm_tag(job.spec.name, vm.instance_id)
    disk_task = back_up_disk.with_options(tags=limits.tags(tag))
    errors = []
    for end in run_admitted(
        todo.disks,
        limits=limits.limits,
        keys=lambda _disk: (tag,),
        submit=lambda disk: disk_task.submit(unvisited(job), vm, disk, taken[disk.volume_id]),
        describe=lambda disk: f"disk {disk.volume_id} of VM {vm.name}",
        watchdog=job.watchdog,
    ):
        if end.error is None and end.result is not None:
            disks[end.item.volume_id] = end.result
        else:
            errors.append(f"disk {end.item.volume_id}: {end.error}")
            disks[end.item.volume_id] = DiskOutcome(disk=end.item, error=str(end.error))
    return errors


def _delete_snapshots(client: BingoCloudClient, taken: dict[str, Snapshot]) -> None:
    for snap in taken.values():
        try:
            delete_snapshot(client, snap.snapshot_id)
        except Exception as exc:  # report, never hide: the next run's cleanup removes it
            get_run_logger().warning("could not delete snapshot %s: %s", snap.snapshot_id, exc)


def _summary_rows(outcomes: list[VmOutcome]) -> list[dict[str, object]]:
    rows = []
    for o in outcomes:
        read, sent, stored = o.total("bytes_read"), o.total("bytes_sent"), o.total("bytes_stored")
        seconds = (o.finished_at - o.started_at).total_seconds()
        rows.append(
            {
                "VM": f"{o.vm.name} ({o.vm.instance_id})",
                "disks": len(o.vm.disks),
                "read MiB": round(read / 2**20, 1),
                "sent MiB": round(sent / 2**20, 1),
                "stored MiB": round(stored / 2**20, 1),
                "dedup ratio": round(read / stored, 1) if stored else None,
                "seconds": round(seconds, 1),
                "MB/s": round(read / 1e6 / seconds, 1) if seconds > 0 else None,
                "status": o.status if not o.error else f"{o.status}: {o.error}",
                "attempts": o.attempts,
                "history": "; ".join(a.describe() for a in o.history),
            }
        )
    return rows


@flow(
    name="bingobackup-backup",
    flow_run_name=job_run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=RUN_THREADS),  # type: ignore[arg-type]
    validate_parameters=True,
    persist_result=False,
    result_storage=RESULT_STORAGE,
)
async def backup(spec: BackupJobSpec, user: str | None = None) -> dict[str, object] | State:
    """Back up the VMs a job spec selects into its pool and register the backup set.

    Precondition and pre-script run first (a failure aborts before anything is touched), the
    post-script last, also after a failure, told the outcome in BINGOBACKUP_STATUS.
    """
    # An async flow whose body is plain synchronous orchestration run in a worker thread:
    # Prefect's sync flow engine ends every run by joining its heartbeat thread, which sleeps
    # in 1 s steps (measured: +0.5 to 0.7 s per run); the async engine does not wait for it.
    return await asyncio.to_thread(_run_job_with_one_client, spec, user)


def _run_job_with_one_client(spec: BackupJobSpec, user: str | None) -> dict[str, object] | State:
    # One API client for the run's own calls and its task runs (they inherit this context):
    # each new client costs a round trip for its CSRF token and, against a team's server,
    # ≈ 20 ms of CPU (its TLS context loads certifi's bundle), taken from the backup's two cores.
    with SyncClientContext.get_or_create():
        user = run_user(user, spec.options)  # the job's recorded owner; its hooks as saved
        try:
            with sole_run(run_tag(spec.name), spec.name):
                crashed = crash_dead_runs(spec.name)
                if crashed:
                    get_run_logger().warning(
                        "marked Crashed, their process being gone: %s", ", ".join(crashed)
                    )
                # Before any hook can end the run: a dead run's VMs must not stay down.
                left_stopped = start_vms_left_stopped(spec.name, user)
                for left in left_stopped:
                    get_run_logger().warning("%s %s", left.vm.describe(), left.note)
                return _run_job(spec, user, left_stopped)
        except JobAlreadyRunningError as exc:  # before any hook, cloud call or pool write
            get_run_logger().warning(str(exc))
            return Cancelled(message=str(exc))


def run_backup_now(spec: BackupJobSpec, user: str | None = None) -> State:
    """Run the backup flow in this process and return its final state (CLI, demo, tests)."""
    return cast(State, asyncio.run(backup(spec=spec, user=user, return_state=True)))  # type: ignore[arg-type]


def _run_job(
    spec: BackupJobSpec, user: str | None, left_stopped: list[LeftStopped]
) -> dict[str, object] | State:
    logger = get_run_logger()
    run_id = str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    options = spec.options
    stopped = run_first_hooks(
        options,
        lambda name: hook_env(job=spec.name, kind="backup", hook=name, run_id=run_id),
        before_snapshot="the job was aborted before any snapshot",
        before_resources="the job was aborted before any resource was touched",
    )
    if stopped is not None:  # a precondition that says no fails a backup (guide table 5)
        message = str(HookFailed(*stopped))
        logger.error(message)
        _post_script(spec, run_id, "failed", [], "", message)
        return Failed(message=message)
    vms: list[str] = []
    try:
        summary, failure = _back_up(spec, user, run_id, vms, left_stopped)
    except BaseException as exc:
        _post_script(spec, run_id, "failed", vms, "", str(exc))
        raise
    _post_script(spec, run_id, str(summary["status"]), vms, str(summary["set_id"]), failure or "")
    if failure:
        return Failed(message=failure, data=summary)
    return summary


def _post_script(
    spec: BackupJobSpec, run_id: str, status: str, vms: list[str], set_id: str, error: str
) -> None:
    """Runs after the job's resources, whatever happened; a failing post-script only warns."""
    run_post_script(
        spec.options,
        hook_env(
            job=spec.name,
            kind="backup",
            hook="post_script",
            status=status,
            vms=vms,
            set_id=set_id,
            run_id=run_id,
            error=error,
        ),
    )


def _back_up(
    spec: BackupJobSpec, user: str | None, run_id: str, vm_names: list[str], left_stopped: list[LeftStopped]
) -> tuple[dict[str, object], str | None]:
    """The job proper: (summary, failure message or None). Fills `vm_names` as soon as known.
    The summary also has a row for each VM a dead run had left stopped (`left_stopped`)."""
    logger = get_run_logger()
    job = prepare_backup(spec, user)
    vm_names.extend(vm.name for vm in job.vms)
    if job.leftovers_removed:
        logger.warning("cleaned up after an interrupted run: %s", ", ".join(job.leftovers_removed))
    limits = job_tag_limits(job)
    ensure_tag_limits(limits.limits, spec.name, sole=True)  # in `sole_run`: a dead run's slots go
    description = f"{spec.name}: bytes read of {len(job.vms)} VMs"
    with progress_artifact("backup-progress", description, job.total_bytes, job.watchdog) as progress:
        job.progress = progress
        outcomes, attempt = _back_up_vms(job, limits)
        progress.finish()
        ordered = [outcomes[vm.instance_id] for vm in job.vms]
        status = register_backup_set(unvisited(job), unvisited(ordered), run_id, attempt)
        rows = _summary_rows(ordered)
        rows += [
            {
                **dict.fromkeys(rows[0] if rows else ()),
                "VM": f"{left.vm.vm_name} ({left.vm.instance_id})",
                "status": left.note,
            }
            for left in left_stopped
        ]
        create_table_artifact(
            table=rows,
            key="backup-summary",
            description=f"Backup set {job.set_id} ({status})",
            _sync=True,  # type: ignore[call-arg]
        )
    summary: dict[str, object] = {
        "set_id": job.set_id if any(o.status == "ok" for o in ordered) else "",
        "status": status,
        "rows": rows,
    }
    failed = [o for o in ordered if o.status == "failed"]
    if not failed:
        return summary, None
    reasons = "; ".join(f"{o.vm.name}: {o.error}" for o in failed)
    message = f"{len(failed)} of {len(ordered)} VM(s) failed after {attempt} attempt(s): {reasons}"
    if job.watchdog.tripped:
        message = f"{job.watchdog.tripped} {message}"
    logger.error(message)
    return summary, message


def _backed_up_disks(earlier: VmOutcome | None) -> list[DiskOutcome]:
    return [d for d in earlier.disks if d.result is not None] if earlier is not None else []


def _back_up_vms(job: BackupJob, limits: JobTagLimits) -> tuple[dict[str, VmOutcome], int]:
    """Every VM, then again the failed ones until the retry count is spent: (outcomes, attempts)."""
    logger = get_run_logger()
    outcomes: dict[str, VmOutcome] = {}
    pending = list(job.vms)
    attempt = 0
    name = job.spec.name
    while pending:
        attempt += 1

        def submit(vm: ResolvedVm, attempt: int = attempt) -> PrefectFuture[VmOutcome]:
            earlier = _backed_up_disks(outcomes.get(vm.instance_id))
            return back_up_vm.with_options(
                tags=limits.tags(job_tag(name), node_tag(name, vm.node_id))
            ).submit(unvisited(job), vm, attempt, unvisited(earlier), limits)

        for end in run_admitted(
            pending,
            limits=limits.limits,
            keys=lambda vm: (job_tag(name), node_tag(name, vm.node_id)),
            submit=submit,
            describe=lambda vm: f"VM {vm.name} ({vm.instance_id})",
            watchdog=job.watchdog,
        ):
            outcome = end.result if end.result is not None else _never_ran(end.item, attempt, end.error)
            outcomes[outcome.vm.instance_id] = outcome.after(outcomes.get(outcome.vm.instance_id))
        pending = [o.vm for o in outcomes.values() if o.status == "failed"]
        if not pending or attempt > job.spec.options.retry.count or job.watchdog.tripped:
            break
        logger.warning(
            "retrying %d failed VM(s) in %g s: %s",
            len(pending),
            job.spec.options.retry.interval_minutes * 60,
            ", ".join(vm.name for vm in pending),
        )
        time.sleep(job.spec.options.retry.interval_minutes * 60)
    return outcomes, attempt


def _never_ran(vm: ResolvedVm, attempt: int, error: BaseException | None) -> VmOutcome:
    """A VM whose task did not give an outcome: never started (the watchdog stopped the run)."""
    now = datetime.now(UTC)
    return VmOutcome(
        vm=vm, status="failed", error=str(error), started_at=now, finished_at=now, attempts=attempt
    )


def summary_rows_from_state(state: State) -> tuple[str, list[dict[str, object]]]:
    """(set id, per-VM rows) of a finished backup run, failed or not."""
    result = state.result(raise_on_failure=False)
    if isinstance(result, dict):
        return str(result.get("set_id", "")), list(result.get("rows", []))
    ended = "was cancelled" if state.is_cancelled() else "failed"
    return "", [{"VM": f"(run {ended} before any VM)", "status": state.message or str(result)}]
