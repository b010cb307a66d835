"""Restore jobs as Prefect deployments: `job create` tells a restore spec by its shape, the job
sits on the target cluster's backup-host queue, a run started from it pauses for the
verification code on the host's worker (a wrong code keeps it paused, nothing created) and the
right code completes it; list/show/edit/clone/delete work, recurring schedules are refused."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    DeploymentFilter,
    DeploymentFilterId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound
from prefect.flow_runs import resume_flow_run
from support.cli import invoke, refused
from support.flow import Registered
from support.jobs import job_spec
from support.restore import back_up, sha256

from bingobackup.restore.verification import verification_code
from bingobackup.specs.job import load_job_spec
from bingobackup.specs.loading import SpecError
from bingobackup.specs.restore import RestoreSpec, load_restore_spec
from deployments.jobs import (
    JobError,
    JobInfo,
    clone_job,
    create_job,
    delete_job,
    edit_job,
    list_jobs,
    read_job,
)
from deployments.kinds import RESTORE_DISK, RESTORE_VM
from deployments.runs import wait_for_run


def _paused_run(
    client: SyncPrefectClient, deployment_id: UUID, not_state: UUID | None = None, timeout: float = 120
) -> FlowRun:
    """The deployment's run once it is paused (in a state other than `not_state`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )
        for run in runs:
            if run.state and run.state.is_paused() and run.state.id != not_state:
                return run
        time.sleep(0.3)
    raise AssertionError(f"no run of deployment {deployment_id} paused within {timeout} s")


def test_job_start_on_a_restore_job_pauses_on_the_hosts_worker_until_the_right_code(
    registered: Registered,
    worker: subprocess.Popen[bytes],
    tmp_path: Path,
) -> None:
    backed_up = back_up(registered, tmp_path)
    client = registered.client
    name = f"restore-{uuid.uuid4().hex[:8]}"
    auto = {"ip": "auto", "mac": "auto"}
    spec_dict = backed_up.spec(
        name=name,
        kind="vm",
        target={"name": f"{name}-vm", "nics": [{"index": 0, **auto}, {"index": 1, **auto}]},
        schedule={"kind": "manual"},
    )
    code = verification_code(load_restore_spec(spec_dict))
    spec_file = tmp_path / "restore.yaml"
    spec_file.write_text(yaml.safe_dump(spec_dict))

    out = invoke("job", "create", str(spec_file))
    assert f"Job {name} created: manual" in out and f"Verification code {code}" in out
    job = read_job(name)
    assert job.kind == RESTORE_VM and isinstance(job.spec, RestoreSpec)
    # It runs on the target cluster's backup host, through that host's own work queue.
    assert job.work_queue == registered.hosts["cluster-a"]
    row = next(line for line in invoke("job", "list").splitlines() if name in line)
    assert "restore vm" in row and "manual" in row

    volumes_before = {v.volume_id for v in client.describe_volumes()}
    assert code in invoke("job", "start", name)
    with get_client(sync_client=True) as prefect:
        run = _paused_run(prefect, job.deployment_id)
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
        assert code in next(str(a.data) for a in artifacts if a.key == "restore-verification-code")
        assert {v.volume_id for v in client.describe_volumes()} == volumes_before

        resume_flow_run(run.id, run_input={"code": "WRONG1"})
        assert run.state is not None
        again = _paused_run(prefect, job.deployment_id, not_state=run.state.id)
        assert {v.volume_id for v in client.describe_volumes()} == volumes_before

        resume_flow_run(again.id, run_input={"code": code})
        final = wait_for_run(prefect, run.id, timeout=240, poll_seconds=0.5)
    assert final.state_type == "COMPLETED", final.message
    assert worker.poll() is None

    [new] = [i for i in client.describe_instances() if i.name == f"{name}-vm"]
    assert new.state.name == "running"
    devices = {b.device_name: b.volume_id for b in new.block_devices}
    assert sha256(registered.volume_file(devices["/dev/vda"])) == backed_up.sha[backed_up.root_volume]
    assert sha256(registered.volume_file(devices["/dev/vdb"])) == backed_up.sha[backed_up.data_volume]

    assert "deleted" in invoke("job", "delete", name, "--yes")
    assert "No job named" in refused("job", "show", name)
    assert new.instance_id in {i.instance_id for i in client.describe_instances()}  # the VM stays


def _restore_spec(name: str, schedule: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "name": name,
        "kind": "disk",
        "cloud": "demo",
        "backup_host": "i-RESTOREHOST",
        "pool": "local-dedup",
        "source": {"vm": "web", "set": "latest"},
        "schedule": schedule,
        **fields,
    }


@pytest.fixture
def make_restore_job(job_pool: str) -> Iterator[Callable[..., JobInfo]]:
    made: list[str] = []

    def make(schedule: dict[str, Any], **fields: Any) -> JobInfo:
        name = f"rjob-{uuid.uuid4().hex[:10]}"
        made.append(name)
        return create_job(load_restore_spec(_restore_spec(name, schedule, **fields)), None)

    yield make
    for job in list_jobs():
        if any(job.name.startswith(name) for name in made):
            delete_job(job.name)


def test_restore_jobs_are_listed_edited_cloned_and_deleted_like_backup_jobs(
    make_restore_job: Callable[..., JobInfo],
) -> None:
    job = make_restore_job({"kind": "manual"}, options={"parallel_vms": 3})
    assert job.kind == RESTORE_DISK and job.work_queue == "i-RESTOREHOST" and job.schedules == []
    assert job.name in {j.name for j in list_jobs()}
    with get_client(sync_client=True) as client:
        assert client.read_deployment_by_name(f"bingobackup-restore-disk/{job.name}").id == job.deployment_id
        # By its tag: a page of every limit misses it once the session's server holds hundreds.
        assert client.read_concurrency_limit_by_tag(f"bingobackup:restore-{job.name}").concurrency_limit == 3

    at = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    once = {"kind": "once", "at": at.strftime("%Y-%m-%dT%H:%M:%S")}
    edited = edit_job(job.name, load_restore_spec(_restore_spec(job.name, once)), None)
    assert edited.deployment_id == job.deployment_id
    assert len(edited.schedules) == 1 and "COUNT=1" in edited.schedules[0]

    # A name is one job, whatever its kind; and a job keeps its kind.
    with pytest.raises(JobError, match="exists already"):
        create_job(load_job_spec(job_spec(job.name, {"kind": "manual"})), None)
    with pytest.raises(JobError, match="keeps its kind"):
        edit_job(job.name, load_job_spec(job_spec(job.name, {"kind": "manual"})), None)

    copy = clone_job(job.name, f"{job.name}-copy", None)
    assert copy.kind == RESTORE_DISK and copy.spec == edited.spec.model_copy(update={"name": copy.name})

    delete_job(job.name)
    with get_client(sync_client=True) as client, pytest.raises(ObjectNotFound):
        client.read_concurrency_limit_by_tag(f"bingobackup:restore-{job.name}")
    with pytest.raises(JobError, match="No job named"):
        read_job(job.name)


def test_an_immediate_restore_job_gets_a_run_at_once_and_recurring_schedules_are_refused(
    make_restore_job: Callable[..., JobInfo], tmp_path: Path
) -> None:
    job = make_restore_job({"kind": "immediate"})
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[job.deployment_id]))
        )
    assert len(runs) == 1
    assert "confirm" not in runs[0].parameters  # the run must pause for the code

    with pytest.raises(SpecError, match="a restore job runs immediate, once or manual, not 'daily'"):
        load_restore_spec(_restore_spec("r", {"kind": "daily", "at": "02:00"}))
    spec_file = tmp_path / "restore.yaml"
    spec_file.write_text(yaml.safe_dump(_restore_spec("r", {"kind": "weekly", "weekdays": ["sat"]})))
    assert "not 'weekly'" in refused("job", "create", str(spec_file))
