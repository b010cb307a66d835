"""A job's hooks as Prefect tasks (backup and restore alike)."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from bingobackup.hooks import HookName, HookResult, run_hook
from bingobackup.specs.job import Hook


@task(name="run hook", task_run_name="{name}", cache_policy=NONE)
def run_job_hook(name: HookName, hook: Hook, env: dict[str, str]) -> HookResult:
    """A precondition, pre- or post-script; its output goes to this task's (the run's) log."""
    return run_hook(name, hook, env, get_run_logger())
