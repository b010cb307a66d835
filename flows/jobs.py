"""What the backup and restore flows share: where results go, the run's threads, the tags
their concurrency limits hang on, the run's name, and the hooks around a job (precondition and
pre-script first, post-script last, whatever happened). `flows.backup` and `flows.restore`
import this module, not each other."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar, cast

from prefect.context import get_run_context
from prefect.settings import get_current_settings
from prefect.utilities.annotations import quote

from bingobackup.hooks import HookedOptions, HookName, HookResult
from tasks.hooks import run_job_hook

T = TypeVar("T")

RESULT_STORAGE = Path(get_current_settings().results.local_storage_path)

# No fixed cap on a run's threads: `run_admitted` submits only what the job's limits admit, so
# a run uses at most parallel VMs × (1 + parallel disks × 4) threads (a VM task, and per disk
# its task and its three stage tasks), started as needed. A fixed cap below that is what let a
# VM's disk tasks starve for threads (the 50-VM hang).
RUN_THREADS = sys.maxsize


def unvisited(value: T) -> T:
    """A task argument Prefect passes as is, without walking it for futures to track: the
    job holds every VM's description and outcomes hold the manifest of every disk (a chunk
    reference per 4 MiB), which Prefect would otherwise visit at every task run."""
    return cast(T, quote(value))


def job_tag(job: str) -> str:
    return f"bingobackup:{job}"


def node_tag(job: str, node_id: str) -> str:
    return f"bingobackup:{job}:node:{node_id}"


def vm_tag(job: str, vm_id: str) -> str:
    return f"bingobackup:{job}:vm:{vm_id}"


def run_tag(job: str) -> str:
    """The job's run slot: one run of a job at a time (`tasks.limits.sole_run`)."""
    return f"bingobackup:{job}:run"


def job_run_name() -> str:
    """A backup or restore run's name: its job and when it started (`flow_run_name`)."""
    parameters = get_run_context().flow_run.parameters  # type: ignore[union-attr]
    spec = parameters["spec"]
    name = spec["name"] if isinstance(spec, dict) else spec.name
    return f"{name} {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"


def run_first_hooks(
    options: HookedOptions,
    env_of: Callable[[HookName], dict[str, str]],
    *,
    before_snapshot: str,
    before_resources: str,
) -> tuple[HookResult, str] | None:
    """The precondition, then the pre-script: the first that did not succeed, with what it
    means for the job (`HookFailed(result, consequence)`), or None when the job may start.
    Whether a precondition saying no fails the job or leaves it idle is the caller's."""
    steps: tuple[tuple[HookName, str], ...] = (
        ("precondition", before_snapshot),
        ("pre_script", before_resources),
    )
    for name, consequence in steps:
        hook = getattr(options, name)
        if hook is None:
            continue
        result = run_job_hook(name, hook, env_of(name))
        if not result.ok:
            return result, consequence
    return None


def run_post_script(options: HookedOptions, env: dict[str, str]) -> None:
    """Runs last whatever happened, told the outcome in `env`; a failing post-script only warns."""
    if options.post_script is not None:
        run_job_hook("post_script", options.post_script, env)
