"""Workers as a backup host runs them: `bingobackup worker start --host ID` in a process group
of its own (SIGTERM at the end, SIGKILL if it lingers), and a wait for its first poll."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from deployments.workpool import queue_last_polled


@contextlib.contextmanager
def process_group(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`command` running in a session of its own, its output in `log`; stopped with its group."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            yield process
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def worker_environment(work_pool: str, **more: str) -> dict[str, str]:
    """A backup host's shell: no PREFECT_API_URL (the command finds its home's server), the
    jobs' work pool, and a worker that polls every second."""
    env = {**os.environ, "BINGOBACKUP_WORK_POOL": work_pool, "PREFECT_WORKER_QUERY_SECONDS": "1", **more}
    env.pop("PREFECT_API_URL", None)
    return env


@contextlib.contextmanager
def running_worker(host: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`bingobackup worker start --host HOST`, as an operator starts it."""
    command = [sys.executable, "-m", "bingobackup.cli.main", "worker", "start", "--host", host]
    with process_group(command, env, log) as process:
        yield process


def wait_until_polling(
    worker: subprocess.Popen[bytes], work_pool: str, host: str, log: Path, timeout: float = 120
) -> None:
    """Synchronised on the API: the worker's first poll of its host's queue, made at start."""
    from prefect.client.orchestration import get_client

    deadline = datetime.now(UTC) + timedelta(seconds=timeout)
    with get_client(sync_client=True) as client:
        while queue_last_polled(client, work_pool, host) is None:
            assert worker.poll() is None, log.read_text()
            assert datetime.now(UTC) < deadline, log.read_text()
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(timeout=0.5)  # a pause that also notices the worker exiting
