"""The restore flows: plan, wait for the verification code, then restore each VM (or its
disks) under the spec's concurrency limits, cleaning up whatever a failed VM left.

Nothing is created before the code is accepted: with `confirm` set to the spec's code
(the CLI asks for it) the run goes straight on; otherwise it pauses for input, showing the
code in the Prefect UI, and a wrong code keeps it paused and says so.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.client.schemas.objects import State
from prefect.context import get_run_context
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import Cancelled, Failed
from prefect.task_runners import ThreadPoolTaskRunner

from bingobackup.errors import BingoBackupError
from bingobackup.hooks import HookFailed, HookName, hook_env
from bingobackup.restore.job import RestoreJob, VmRestoreOutcome
from bingobackup.restore.ledger import Ledger
from bingobackup.restore.plan import VmPlan
from bingobackup.restore.steps import RestoredDisk, hand_over
from bingobackup.restore.verification import code_matches, verification_code
from bingobackup.specs.restore import RestoreSpec
from flows.admission import run_admitted
from flows.jobs import (
    RESULT_STORAGE,
    RUN_THREADS,
    job_run_name,
    job_tag,
    node_tag,
    run_first_hooks,
    run_post_script,
    unvisited,
    vm_tag,
)
from tasks.limits import ensure_tag_limits
from tasks.owner import run_user
from tasks.progress import progress_artifact
from tasks.restore import (
    attach_disk_task,
    clean_up_task,
    create_vm_task,
    ledger_of,
    prepare_restore,
    remove_left_by_killed_runs_task,
    write_disk_task,
)

PAUSE_POLL_SECONDS = 2
# A run whose precondition answered no: a Cancelled state of this name, and the summary's status.
IDLE = "idle"


class VerificationCode(RunInput):
    """What the operator types in the Prefect UI to let the restore start."""

    code: str


def limits_name(job_name: str) -> str:
    """The name a restore job's concurrency tags are made from (`flows.backup.job_tag` etc.)."""
    # Restore jobs get their own tag space: a restore named like a backup job has its own limits.
    return f"restore-{job_name}"


def _ensure_limits(job: RestoreJob) -> dict[str, int]:
    """The run's tag limits, set on the server; returned for `run_admitted` to keep to."""
    options, name = job.spec.options, limits_name(job.spec.name)
    limits = {job_tag(name): options.parallel_vms}
    for vm in job.plan.to_restore:
        limits[node_tag(name, vm.node_key)] = options.parallel_vms_per_node
        limits[vm_tag(name, vm.source.vm_id)] = options.parallel_disks_per_vm
    ensure_tag_limits(limits, job.spec.name)
    return limits


def _plan_rows(job: RestoreJob) -> list[dict[str, object]]:
    return [
        {
            "source VM": vm.source.label,
            "target": vm.name if job.spec.kind == "vm" else f"attach to {vm.attach_to}",
            "node": vm.node_id or "(cloud chooses)",
            "disks": ", ".join(f"{d.name} on {d.storage_id}" for d in vm.disks),
            "NICs": ", ".join(
                f"{n.subnet_id} ip {n.private_ip_address or 'auto'} mac {n.mac_address or 'auto'}"
                for n in vm.nics
            ),
            "action": f"skip: {vm.skip_reason}" if vm.skip_reason else "restore",
        }
        for vm in job.plan.vms
    ]


def await_verification(spec: RestoreSpec, confirm: str | None, timeout_seconds: int) -> None:
    """Return once the operator has given the spec's code; pause the run until then."""
    if code_matches(spec, confirm):
        return
    logger = get_run_logger()
    code = verification_code(spec)
    create_markdown_artifact(
        markdown=f"# Verification code: `{code}`\n\nType it to start restore **{spec.name}**.",
        key="restore-verification-code",
        description=f"Verification code of restore {spec.name}",
    )
    problem = f"The code given ({confirm!r}) is wrong; nothing was created. " if confirm else ""
    attempt = 0
    while True:
        attempt += 1
        if problem:
            logger.warning(problem)
        description = (
            f"{problem}Restore **{spec.name}** creates new volumes"
            f"{' and VMs' if spec.kind == 'vm' else ''}. Type the verification code **{code}** to start it."
        )
        typed = pause_flow_run(
            wait_for_input=VerificationCode.with_initial_data(description=description, code=""),
            timeout=timeout_seconds,
            poll_interval=PAUSE_POLL_SECONDS,
            key=f"verification-{attempt}",
        )
        if code_matches(spec, typed.code):
            logger.info("verification code accepted")
            return
        problem = f"The code typed ({typed.code!r}) is wrong; nothing was created. "


def _write_disks(job: RestoreJob, ledger: Ledger, vm: VmPlan) -> list[RestoredDisk]:
    """Every disk of the VM, waiting for all of them even when one fails."""
    tag = vm_tag(limits_name(job.spec.name), vm.source.vm_id)
    disk_task = write_disk_task.with_options(tags=[tag])
    ends = run_admitted(
        vm.disks,
        limits={tag: job.spec.options.parallel_disks_per_vm},
        keys=lambda _disk: (tag,),
        submit=lambda disk: disk_task.submit(unvisited(job), unvisited(ledger), unvisited(vm), disk),
        describe=lambda disk: f"disk {disk.source.volume_id} of VM {vm.source.label}",
        watchdog=job.watchdog,
    )
    errors = [str(end.error) for end in ends if end.error is not None]
    if errors:
        raise BingoBackupError("; ".join(errors))
    return [end.result for end in ends if end.result is not None]


def _outcome(vm: VmPlan, started: float, **fields: Any) -> VmRestoreOutcome:
    target = vm.name if not vm.attach_to else f"{vm.name} ({vm.attach_to})"
    return VmRestoreOutcome(
        source_vm=vm.source.name,
        set_id=vm.source.set_id,
        target=target,
        seconds=round(time.monotonic() - started, 2),
        **fields,
    )


@task(name="restore VM", task_run_name="restore {vm.source.name} → {vm.name}", cache_policy=NONE)
def restore_one(job: RestoreJob, vm: VmPlan) -> VmRestoreOutcome:
    """One VM (or one VM's disks). Never raises: a failure cleans up and becomes an outcome."""
    started = time.monotonic()
    ledger = ledger_of(job, vm)  # kept on the server: a killed run's next run removes what it made
    try:
        disks = _write_disks(job, ledger, vm)
        instance = None
        if job.spec.kind == "vm":
            instance = create_vm_task(unvisited(job), unvisited(ledger), unvisited(vm), disks)
        else:
            disks = [attach_disk_task(unvisited(job), unvisited(vm), d) for d in disks]
        hand_over(ledger, instance, disks)
        leftovers = clean_up_task(unvisited(job), unvisited(ledger))  # temporaries the steps could not remove
        return _outcome(
            vm,
            started,
            status="ok",
            instance_id=instance.instance_id if instance else vm.attach_to,
            volumes=tuple(f"{d.volume_id}{' at ' + d.device if d.device else ''}" for d in disks),
            bytes_written=sum(d.result.bytes_written for d in disks),
            write_seconds=round(max((d.result.seconds for d in disks), default=0.0), 3),
            leftovers=tuple(leftovers),
        )
    except Exception as exc:
        get_run_logger().error("restore of %s failed: %s", vm.source.label, exc)
        leftovers = clean_up_task(unvisited(job), unvisited(ledger))
        return _outcome(vm, started, status="failed", error=str(exc), leftovers=tuple(leftovers))


def _summary_rows(outcomes: list[VmRestoreOutcome]) -> list[dict[str, object]]:
    return [
        {
            "source VM": o.source_vm,
            "set": o.set_id,
            "target": o.target,
            "status": o.status if not o.error else f"{o.status}: {o.error}",
            "instance": o.instance_id,
            "volumes": ", ".join(o.volumes),
            "written MiB": round(o.bytes_written / 2**20, 1),
            "write MiB/s": round(o.bytes_written / 2**20 / o.write_seconds, 1) if o.write_seconds else "",
            "seconds": o.seconds,
            "leftovers": "; ".join(o.leftovers),
        }
        for o in outcomes
    ]


def _run_id() -> str:
    return str(get_run_context().flow_run.id)  # type: ignore[union-attr]


def _hook_env(
    spec: RestoreSpec, name: HookName, vms: list[str], status: str = "", error: str = ""
) -> dict[str, str]:
    sets = dict.fromkeys(item.source.set for item in spec.vms)  # spec order, no repeats
    return hook_env(
        job=spec.name,
        kind="restore",
        hook=name,
        status=status,
        vms=vms,
        set_id=" ".join(sets),
        run_id=_run_id(),
        error=error,
    )


def _first_hooks(spec: RestoreSpec, vms: list[str]) -> tuple[str, str] | None:
    """Precondition, then pre-script: (status, why) when the restore must not start, or None.

    A precondition that answers no leaves the restore idle (guide table 5), not failed.
    """
    stopped = run_first_hooks(
        spec.options,
        lambda name: _hook_env(spec, name, vms),
        before_snapshot="the restore did not start: nothing was created",
        before_resources="the restore was aborted before creating anything",
    )
    if stopped is None:
        return None
    result, consequence = stopped
    if result.name == "precondition" and result.said_no:
        return IDLE, (
            f"{result.describe()}: the precondition does not hold, so restore {spec.name} is "
            "idle and created nothing. Start it again when the condition holds."
        )
    return "not started", str(HookFailed(result, consequence))


def _post_script(spec: RestoreSpec, vms: list[str], status: str, error: str) -> None:
    """Runs last whatever happened, told the outcome; a failing post-script only warns."""
    run_post_script(spec.options, _hook_env(spec, "post_script", vms, status, error))


def run_restore(
    spec: RestoreSpec, kind: str, confirm: str | None, user: str | None, verification_timeout_seconds: int
) -> dict[str, object] | State:
    """The restore between its hooks: the post-script learns the outcome, failures included."""
    if spec.kind != kind:
        raise BingoBackupError(
            f"Restore spec {spec.name} has kind: {spec.kind}; run it with `bingobackup restore {spec.kind}`."
        )
    user = run_user(user, spec.options)  # the job's recorded owner; its hooks as saved
    vms = [item.source.vm for item in spec.vms]
    try:
        summary, failure = _restore(spec, confirm, user, verification_timeout_seconds, vms)
    except Exception as exc:
        _post_script(spec, vms, "failed", str(exc))
        raise
    _post_script(spec, vms, str(summary["status"]), failure or "")
    if summary["status"] == IDLE:
        return Cancelled(name="Idle", message=failure, data=summary)
    if failure and summary["status"] == "not started":
        return Failed(message=failure)
    if failure:
        return Failed(message=failure, data=summary)
    return summary


def _restore_vms(job: RestoreJob, limits: dict[str, int]) -> list[VmRestoreOutcome]:
    """Every planned VM under the job's limits; skipped ones reported with their reason."""
    name = limits_name(job.spec.name)
    ends = iter(
        run_admitted(
            job.plan.to_restore,
            limits=limits,
            keys=lambda vm: (job_tag(name), node_tag(name, vm.node_key)),
            submit=lambda vm: restore_one.with_options(
                tags=[job_tag(name), node_tag(name, vm.node_key)]
            ).submit(unvisited(job), unvisited(vm)),
            describe=lambda vm: f"VM {vm.source.label}",
            watchdog=job.watchdog,
        )
    )
    outcomes = []
    for vm in job.plan.vms:
        if vm.skip_reason:
            outcomes.append(
                VmRestoreOutcome(
                    source_vm=vm.source.name,
                    set_id=vm.source.set_id,
                    target=vm.name,
                    status="skipped",
                    error=vm.skip_reason,
                )
            )
            continue
        end = next(ends)
        outcomes.append(
            end.result
            if end.result is not None
            else _outcome(vm, time.monotonic(), status="failed", error=str(end.error))
        )
    return outcomes


def _clean_up_after_killed_runs(job: RestoreJob) -> bool:
    """Removes what killed runs of this job left in the cloud; True when something went."""
    logger = get_run_logger()
    removed, stuck = remove_left_by_killed_runs_task(job)
    if stuck:
        logger.warning(
            "a killed run of restore %s left what could not be removed: %s", job.spec.name, "; ".join(stuck)
        )
    if removed:
        logger.warning("removed what a killed run of restore %s left: %s", job.spec.name, "; ".join(removed))
    return bool(removed)


def _restore(
    spec: RestoreSpec,
    confirm: str | None,
    user: str | None,
    verification_timeout_seconds: int,
    vms: list[str],
) -> tuple[dict[str, object], str | None]:
    """Plan, verification code, first hooks, then every VM: (summary, failure message or None)."""
    logger = get_run_logger()
    job = prepare_restore(spec, user)
    create_table_artifact(
        table=_plan_rows(job), key="restore-plan", description=f"What restore {spec.name} does"
    )
    await_verification(spec, confirm, verification_timeout_seconds)
    # After the code: a pre-script may act (stop an application...), so only once the operator agreed.
    refusal = _first_hooks(spec, vms)
    if refusal:
        status, why = refusal
        (logger.warning if status == IDLE else logger.error)(why)
        return {"status": status, "rows": [], "outcomes": []}, why
    if _clean_up_after_killed_runs(job):  # names and addresses its half-made VMs held are free: plan anew
        job = prepare_restore(spec, user)
    limits = _ensure_limits(job)
    with progress_artifact(
        "restore-progress", f"{spec.name}: bytes written", job.plan.total_bytes, job.watchdog
    ) as progress:
        job.progress = progress
        outcomes = _restore_vms(job, limits)
        progress.finish()
        rows = _summary_rows(outcomes)
        failed = [o for o in outcomes if o.status == "failed"]
        status = (
            "failed"
            if failed and len(failed) == len(job.plan.to_restore)
            else ("partial" if failed else "ok")
        )
        create_table_artifact(
            table=rows, key="restore-summary", description=f"Restore {spec.name} ({status})"
        )
    summary: dict[str, object] = {
        "status": status,
        "rows": rows,
        "outcomes": [o.model_dump() for o in outcomes],
    }
    if failed:
        reasons = "; ".join(f"{o.source_vm}: {o.error}" for o in failed)
        leftovers = [item for o in failed for item in o.leftovers]
        message = f"{len(failed)} of {len(outcomes)} VM(s) failed: {reasons}"
        if job.watchdog.tripped:
            message = f"{job.watchdog.tripped} {message}"
        if leftovers:
            message += f". Left behind (remove by hand): {'; '.join(leftovers)}"
        logger.error(message)
        return summary, message
    return summary, None


@flow(
    name="bingobackup-restore-vm",
    flow_run_name=job_run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=RUN_THREADS),  # type: ignore[arg-type]
    validate_parameters=True,
    persist_result=False,
    result_storage=RESULT_STORAGE,
)
def restore_vm(
    spec: RestoreSpec,
    confirm: str | None = None,
    user: str | None = None,
    verification_timeout_seconds: int = 3600,
) -> dict[str, object] | State:
    """Restore backed-up VMs to new VMs (after the verification code is given)."""
    return run_restore(spec, "vm", confirm, user, verification_timeout_seconds)


@flow(
    name="bingobackup-restore-disk",
    flow_run_name=job_run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=RUN_THREADS),  # type: ignore[arg-type]
    validate_parameters=True,
    persist_result=False,
    result_storage=RESULT_STORAGE,
)
def restore_disk(
    spec: RestoreSpec,
    confirm: str | None = None,
    user: str | None = None,
    verification_timeout_seconds: int = 3600,
) -> dict[str, object] | State:
    """Restore chosen backed-up disks to new volumes attached to a VM (after the verification code)."""
    return run_restore(spec, "disk", confirm, user, verification_timeout_seconds)
