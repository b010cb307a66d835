"""Job hooks (guide table 3): the precondition, pre-script and post-script of a job.

A hook is a shell command run on the backup host with a time limit. It learns what it is
running for from its environment (`BINGOBACKUP_JOB`, `BINGOBACKUP_KIND`, `BINGOBACKUP_HOOK`,
`BINGOBACKUP_STATUS`, `BINGOBACKUP_VMS`, …) and its output goes to the run's log line by
line. Backup and restore both call `run_hook`; what a failed hook means (abort, or only a
warning) is the caller's decision.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from bingobackup.errors import BingoBackupError
from bingobackup.specs.job import Hook

HookName = Literal["precondition", "pre_script", "post_script"]
HOOK_NAMES: tuple[HookName, ...] = ("precondition", "pre_script", "post_script")
ENV_PREFIX = "BINGOBACKUP_"
# Keep the log readable when a script prints a lot: the rest is summarised as a count.
MAX_LOGGED_LINES = 200


class HookResult(BaseModel):
    """How a hook ended. `exit_code` is None when it was killed at its time limit."""

    model_config = ConfigDict(frozen=True)

    name: HookName
    command: str
    exit_code: int | None
    timed_out: bool = False
    seconds: float
    output_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def said_no(self) -> bool:
        """The command ran and answered "no" (exit 1–125). 126/127 (the shell could not run or
        find it), a signal or a time-out are faults to fix, not answers."""
        return self.exit_code is not None and 1 <= self.exit_code <= 125

    def describe(self) -> str:
        what = self.name.replace("_", "-")
        if self.timed_out:
            why = "was stopped at its time limit"
        elif self.exit_code is not None and self.exit_code < 0:
            why = f"was killed by signal {-self.exit_code}"
        else:
            why = f"exited with status {self.exit_code}"
        tail = f" (last output: {self.output_tail})" if self.output_tail else ""
        return f"{what} `{self.command}` {why} after {self.seconds:.1f} s{tail}"


class HookFailed(BingoBackupError):
    """A hook that must succeed did not; the message says which and why."""

    def __init__(self, result: HookResult, consequence: str) -> None:
        self.result = result
        super().__init__(
            f"{result.describe()}; {consequence}. Fix the command (its output is in the run's logs) "
            "or remove it from the job's options."
        )


def hook_env(
    *,
    job: str,
    kind: Literal["backup", "restore"],
    hook: HookName,
    status: str = "",
    vms: Iterable[str] = (),
    set_id: str = "",
    run_id: str = "",
    error: str = "",
) -> dict[str, str]:
    """The variables a hook sees (on top of the worker's own environment).

    `status` is empty before the job has an outcome (precondition, pre-script); the
    post-script gets `ok`, `partial`, `failed` (restore: its own statuses) and `error`.
    """
    return {
        f"{ENV_PREFIX}JOB": job,
        f"{ENV_PREFIX}KIND": kind,
        f"{ENV_PREFIX}HOOK": hook,
        f"{ENV_PREFIX}STATUS": status,
        f"{ENV_PREFIX}VMS": " ".join(vms),
        f"{ENV_PREFIX}SET_ID": set_id,
        f"{ENV_PREFIX}RUN_ID": run_id,
        f"{ENV_PREFIX}ERROR": error,
    }


def run_hook(
    name: HookName,
    hook: Hook,
    env: Mapping[str, str],
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> HookResult:
    """Run `hook.command` with `/bin/sh`, `env` added to the environment, stdin closed.

    Output (stdout and stderr together) is logged after the command ends; at its time limit
    the command and every process it started are killed. Never raises for a failing command:
    the caller decides (see `HookFailed`).
    """
    label = name.replace("_", "-")
    logger.info("%s: running `%s` (time limit %d s)", label, hook.command, hook.timeout_seconds)
    started = time.monotonic()
    # A session of its own, so a timeout kills the whole tree (`sleep` started by the script too).
    process = subprocess.Popen(
        hook.command,
        shell=True,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    timed_out = False
    try:
        output, _ = process.communicate(timeout=hook.timeout_seconds)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_tree(process)
        output, _ = process.communicate()
    seconds = time.monotonic() - started
    lines = output.decode("utf-8", errors="replace").splitlines()
    for line in lines[:MAX_LOGGED_LINES]:
        logger.info("%s | %s", label, line)
    if len(lines) > MAX_LOGGED_LINES:
        logger.info("%s | … %d more lines not logged", label, len(lines) - MAX_LOGGED_LINES)
    result = HookResult(
        name=name,
        command=hook.command,
        exit_code=None if timed_out else process.returncode,
        timed_out=timed_out,
        seconds=round(seconds, 3),
        output_tail=lines[-1].strip()[:200] if lines else "",
    )
    log = logger.info if result.ok else logger.warning
    log("%s: %s", label, result.describe())
    return result


def _kill_tree(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


class HookedOptions(Protocol):
    """Backup and restore options: both carry the three hooks."""

    @property
    def precondition(self) -> Hook | None: ...
    @property
    def pre_script(self) -> Hook | None: ...
    @property
    def post_script(self) -> Hook | None: ...


def hooks_of(options: HookedOptions) -> dict[str, Hook]:
    """The hooks a job's options set (backup and restore options both carry the three)."""
    return {name: hook for name in HOOK_NAMES if (hook := getattr(options, name)) is not None}


def hooks_digest(options: HookedOptions) -> str | None:
    """A fingerprint of the commands a job runs on its backup host (None: it runs none), kept
    with the job when it is saved, so a run whose hooks differ (a Custom run in the UI edits
    the spec parameter) is refused before anything runs."""
    hooks = hooks_of(options)
    if not hooks:
        return None
    canonical = json.dumps(
        {name: hook.model_dump(mode="json") for name, hook in hooks.items()}, sort_keys=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
