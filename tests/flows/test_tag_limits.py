"""Tag limits follow the job's options from run to run (a job edited from 2 parallel VMs to 1
must run with 1), and a run leaves other jobs' limits alone."""

from __future__ import annotations

import uuid

from prefect.client.orchestration import get_client

from bingobackup.cli.prefect_server import ServerInfo
from tasks.limits import apply_tag_limits


def _limit(tag: str) -> int:
    with get_client(sync_client=True) as client:
        return int(client.read_concurrency_limit_by_tag(tag).concurrency_limit)


def test_limits_are_created_changed_and_others_left_alone(prefect_server: ServerInfo) -> None:
    job, other = f"bingobackup:job-{uuid.uuid4().hex[:8]}", f"bingobackup:other-{uuid.uuid4().hex[:8]}"
    apply_tag_limits({job: 2, other: 5})
    assert (_limit(job), _limit(other)) == (2, 5)
    apply_tag_limits({job: 1})
    assert (_limit(job), _limit(other)) == (1, 5)
