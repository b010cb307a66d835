"""Who a job's runs act as: the owner recorded with the job, never a run parameter.

Prefect OSS has no users: anybody who reaches the UI can start a *Custom run* of a deployment
with any parameters. So the user a run of a job acts as (whose authorizations decide which
clouds, backup hosts and pools it may use) is not the run's `user` parameter but the owner
`bingobackup job create|edit|clone` recorded, after checking the job's resources against that
user's authorizations: one Prefect variable per deployment, keyed by its id, so a deployment
made again under the same name (by the UI or `prefect deploy`) has no owner until
`bingobackup job edit` records one. A run outside a deployment (the CLI's `backup run`,
`restore vm|disk`) acts as the `user` its caller passed.
"""

from __future__ import annotations

import contextlib
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import VariableCreate, VariableUpdate
from prefect.context import FlowRunContext, SyncClientContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from bingobackup.errors import BingoBackupError
from bingobackup.hooks import HookedOptions, hooks_digest

OWNER_TAG = "bingobackup-job-owner"


def owner_variable(deployment_id: UUID) -> str:
    return f"bingobackup-job-owner-{deployment_id}"


def record_owner(
    client: SyncPrefectClient, deployment_id: UUID, job: str, owner: str | None, hooks: str | None = None
) -> None:
    """Record `owner` (None: the local admin of an install without users) as the user runs of
    the job's deployment act as, and `hooks`, the digest of the commands the job runs on its
    backup host (`bingobackup.hooks.hooks_digest`); the caller checked the job against
    `owner`'s authorizations (hooks: admins only)."""
    name, value = owner_variable(deployment_id), {"job": job, "owner": owner, "hooks": hooks}
    tags = [OWNER_TAG, f"job:{job}"]
    try:
        client.create_variable(VariableCreate(name=name, value=value, tags=tags))
    except ObjectAlreadyExists:  # an edit: the last user who saved the job owns it
        client.update_variable(VariableUpdate(name=name, value=value, tags=tags))


def forget_owner(client: SyncPrefectClient, deployment_id: UUID) -> None:
    with contextlib.suppress(ObjectNotFound):
        client.delete_variable_by_name(owner_variable(deployment_id))


def _recorded(client: SyncPrefectClient, deployment_id: UUID) -> dict[str, Any] | None:
    """What `record_owner` saved for the deployment: owner and hooks digest; None when nothing."""
    variable = client.read_variable_by_name(owner_variable(deployment_id))
    if variable is None or not isinstance(variable.value, dict):
        return None
    return variable.value


def _owner_of(recorded: dict[str, Any]) -> str | None:
    owner = recorded.get("owner")
    return owner if isinstance(owner, str) else None


def recorded_owner(client: SyncPrefectClient, deployment_id: UUID) -> tuple[bool, str | None]:
    """(whether an owner is recorded, the owner)."""
    recorded = _recorded(client, deployment_id)
    return (False, None) if recorded is None else (True, _owner_of(recorded))


def _check_hooks(options: HookedOptions, recorded: dict[str, Any] | None) -> None:
    """Refuse a run of a job whose precondition, pre-script or post-script are not the ones
    saved with the job (by an admin: `job create|edit`): the spec is a run parameter a *Custom
    run* in the UI can change, and hooks are shell commands on the backup host."""
    if hooks_digest(options) != (recorded or {}).get("hooks"):
        raise BingoBackupError(
            "This run's precondition, pre-script or post-script differ from those saved with the job, "
            "so nothing was run: they are shell commands on the backup host, which only an admin may set "
            "(`bingobackup job edit JOB SPEC.yaml` as an admin), never from a run's parameters."
        )


def run_user(user: str | None, options: HookedOptions | None = None) -> str | None:
    """The user this flow run acts as: its deployment's recorded owner when it runs a job,
    else `user` (the CLI's in-process runs, whose hooks are their caller's own). A `user`
    parameter that differs from the owner is ignored, with a warning in the run's log. With
    the job's `options`, a run whose hooks differ from those saved with the job is refused
    (one read of what the job recorded serves both)."""
    context = FlowRunContext.get()
    deployment_id = context.flow_run.deployment_id if context and context.flow_run else None
    if deployment_id is None:
        return user
    with SyncClientContext.get_or_create() as client_context:
        recorded = _recorded(client_context.client, deployment_id)
    owner = _owner_of(recorded) if recorded is not None else None
    logger = get_run_logger()
    if recorded is None:
        logger.warning(
            "This deployment has no recorded owner (it was not saved by `bingobackup job create|edit`), so "
            "its runs act as the local admin, which works only while no user is registered. Record one "
            "with `BINGOBACKUP_USER=NAME bingobackup job edit JOB SPEC.yaml`."
        )
    if user is not None and user != owner:
        logger.warning(
            "The run's `user` parameter (%r) is ignored: runs of a job act as the owner recorded when the "
            "job was created or edited, %s. To run it as another user, that user edits the job "
            "(`bingobackup job edit`).",
            user,
            repr(owner) if owner else "the local admin",
        )
    if recorded is not None:
        logger.info("acting as %s, the job's recorded owner", repr(owner) if owner else "the local admin")
    if options is not None:
        _check_hooks(options, recorded)
    return owner
