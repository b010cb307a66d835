"""Fixtures for job tests: jobs created through `deployments.jobs` on the session's Prefect
server, on a work pool of their own, deleted afterwards; the cluster-a backup host's worker."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.flow import Registered
from support.jobs import job_spec
from support.worker import running_worker, worker_environment

from bingobackup.cli.prefect_server import ServerInfo
from bingobackup.specs.job import load_job_spec
from deployments.jobs import JobInfo, create_job, delete_job, list_jobs


@pytest.fixture(scope="session")
def job_pool(prefect_server: ServerInfo) -> Iterator[str]:
    """A work pool only these tests use, so no other test's worker runs their jobs."""
    name = f"bb-jobs-{uuid.uuid4().hex[:8]}"
    patch = pytest.MonkeyPatch()
    patch.setenv("BINGOBACKUP_WORK_POOL", name)
    try:
        yield name
    finally:
        patch.undo()


@pytest.fixture
def make_job(job_pool: str) -> Iterator[Callable[..., JobInfo]]:
    """Create a job with the given schedule (unique name); after the test, every job whose name
    starts with one made here (clones are named `<name>-…`) is deleted."""
    made: list[str] = []

    def make(schedule: dict[str, Any], **overrides: Any) -> JobInfo:
        name = overrides.pop("name", f"job-{uuid.uuid4().hex[:10]}")
        made.append(name)
        return create_job(load_job_spec(job_spec(name, schedule, **overrides)), None)

    yield make
    for job in list_jobs():
        if any(job.name.startswith(name) for name in made):
            delete_job(job.name)


@pytest.fixture
def worker(registered: Registered, job_pool: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`bingobackup worker start` for the cluster-a backup host, polling every second."""
    env = worker_environment(job_pool)
    with running_worker(registered.hosts["cluster-a"], env, tmp_path / "worker.log") as process:
        yield process
