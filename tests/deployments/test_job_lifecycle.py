"""Edit, clone, delete and start jobs: what stays (deployment id, run history) and what changes."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta

import pytest
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.states import Cancelled
from support.jobs import job_spec

from bingobackup.specs.job import load_job_spec
from bingobackup.specs.loading import SpecError
from deployments.jobs import (
    JobError,
    JobInfo,
    clone_job,
    create_job,
    delete_job,
    edit_job,
    read_job,
    start_job,
)
from deployments.runs import drop_stale_runs, recent_runs, upcoming_runs
from flows.backup import job_tag

MakeJob = Callable[..., JobInfo]
WEEKLY = {"kind": "weekly", "weekdays": ["sat"], "at": "02:00"}


def test_runs_scheduled_from_an_earlier_version_of_the_job_are_dropped_and_current_ones_kept(
    make_job: MakeJob,
) -> None:
    """Prefect's scheduler may insert runs of the old schedule while an edit replaces it; they
    carry the old spec, and `drop_stale_runs` (called by every edit) removes exactly those."""
    job = make_job(WEEKLY)
    current = {"spec": job.spec.model_dump(mode="json", by_alias=True)}  # no `user`: see tasks.owner
    with get_client(sync_client=True) as client:
        planned = len(upcoming_runs(client, job.deployment_id, 3))
        assert planned == 3
        assert drop_stale_runs(client, job.deployment_id, current) == 0  # made from this version
        older = {**current, "spec": {**current["spec"], "schedule": {"kind": "daily", "at": "05:00"}}}
        assert drop_stale_runs(client, job.deployment_id, older) == planned  # as if the job changed since
        assert drop_stale_runs(client, job.deployment_id, older) == 0  # none of them is left


def test_edit_keeps_the_deployment_and_its_history_and_replaces_the_schedule(make_job: MakeJob) -> None:
    job = make_job(WEEKLY)
    run = start_job(job.name)
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, Cancelled(), force=True)

    new_spec = load_job_spec(job_spec(job.name, {"kind": "daily", "at": "05:00"}))
    edited = edit_job(job.name, new_spec, None)

    assert edited.deployment_id == job.deployment_id
    assert edited.spec.schedule.kind == "daily"
    with get_client(sync_client=True) as client:
        assert run.id in {r.id for r in recent_runs(client, job.deployment_id, 10)}
        upcoming = upcoming_runs(client, job.deployment_id, 4)
    # The Saturday runs the old schedule had planned are gone: only the new daily 05:00 remains.
    assert [r.expected_start.time() for r in upcoming if r.expected_start] == [time(5, 0)] * 4
    days = [r.expected_start.date() for r in upcoming if r.expected_start]
    assert [(b - a).days for a, b in itertools.pairwise(days)] == [1, 1, 1]


def test_edit_refuses_a_renamed_spec_and_an_unknown_job(make_job: MakeJob) -> None:
    job = make_job(WEEKLY)
    with pytest.raises(JobError, match="A job keeps its name"):
        edit_job(job.name, load_job_spec(job_spec(f"{job.name}-other", WEEKLY)), None)
    with pytest.raises(JobError, match=r"No job named .no-such-job.*job list"):
        edit_job("no-such-job", load_job_spec(job_spec("no-such-job", WEEKLY)), None)


def test_create_refuses_a_taken_name_and_a_once_in_the_past(make_job: MakeJob) -> None:
    job = make_job(WEEKLY)
    with pytest.raises(JobError, match=r"exists already.*job edit"):
        create_job(load_job_spec(job_spec(job.name, WEEKLY)), None)
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    with pytest.raises(JobError, match=r"in the past.*schedule\.at"):
        make_job({"kind": "once", "at": past})


def test_clone_copies_spec_and_schedule_under_a_new_name(make_job: MakeJob) -> None:
    job = make_job(
        {"kind": "monthly", "weekdays": ["last fri"], "at": "23:00", "timezone": "Asia/Shanghai"},
        options={"parallel_vms": 3},
    )
    copy = clone_job(job.name, f"{job.name}-copy", None)
    assert copy.deployment_id != job.deployment_id
    assert copy.spec == job.spec.model_copy(update={"name": f"{job.name}-copy"})
    assert copy.schedules == job.schedules
    assert f"job:{job.name}-copy" in copy.tags
    with get_client(sync_client=True) as client:
        original_times = [r.expected_start for r in upcoming_runs(client, job.deployment_id, 3)]
        copy_times = [r.expected_start for r in upcoming_runs(client, copy.deployment_id, 3)]
    assert copy_times == original_times
    assert read_job(job.name).deployment_id == job.deployment_id  # the original is untouched


def test_job_concurrency_limit_is_created_updated_and_removed_with_the_job(make_job: MakeJob) -> None:
    job = make_job(WEEKLY, options={"parallel_vms": 3})
    tag = job_tag(job.name)
    with get_client(sync_client=True) as client:
        assert client.read_concurrency_limit_by_tag(tag).concurrency_limit == 3
        edit_job(job.name, load_job_spec(job_spec(job.name, WEEKLY, options={"parallel_vms": 1})), None)
        assert client.read_concurrency_limit_by_tag(tag).concurrency_limit == 1
        # A limit the run added for one of the job's nodes goes with the job too.
        client.create_concurrency_limit(tag=f"{tag}:node:n1@10.0.0.1", concurrency_limit=2)
        delete_job(job.name)
        for gone in (tag, f"{tag}:node:n1@10.0.0.1"):
            with pytest.raises(ObjectNotFound):
                client.read_concurrency_limit_by_tag(gone)
    with pytest.raises(JobError, match="No job named"):
        read_job(job.name)


@pytest.mark.parametrize(
    ("schedule", "needle"),
    [
        ({"kind": "hourly", "every_minutes": 0}, "every_minutes must be 1–1440"),
        ({"kind": "hourly", "every_minutes": 1441}, "every_minutes must be 1–1440"),
        ({"kind": "hourly", "from": "8:00"}, "from must be a time of day HH:MM"),
        ({"kind": "weekly", "every": 53, "weekdays": ["mon"]}, "'every' must be 1–52 weeks"),
        ({"kind": "monthly", "months": [13], "dates": [1]}, "'months' must be 1–12"),
        ({"kind": "monthly", "dates": [32]}, "'dates' must be 1–31 or 'last'"),
        ({"kind": "monthly", "weekdays": ["fifth mon"]}, "<first|second|third|fourth|last> <mon…sun>"),
        ({"kind": "monthly", "dates": [1], "weekdays": ["first mon"]}, "exactly one of 'dates'"),
        ({"kind": "once"}, "schedule.once.at"),
    ],
)
def test_schedule_values_out_of_range_are_refused_naming_field_and_range(schedule: dict, needle: str) -> None:
    with pytest.raises(SpecError) as info:
        load_job_spec(job_spec("bad-schedule", schedule))
    assert needle in str(info.value)
