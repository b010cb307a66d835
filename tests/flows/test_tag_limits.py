"""Tag limits follow the job's options from run to run (a job edited from 2 parallel VMs to 1
must run with 1), and a run leaves other jobs' limits alone; slots a killed run holds are
reported when the next run starts and can be freed."""

from __future__ import annotations

import uuid

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import ConcurrencyLeaseHolder

from bingobackup.cli.prefect_server import ServerInfo
from tasks.limits import SLOT_LEASE_SECONDS, HeldSlots, apply_tag_limits, delete_tag_limits, ensure_tag_limits


def _limit(tag: str) -> int:
    with get_client(sync_client=True) as client:
        return int(client.read_concurrency_limit_by_tag(tag).concurrency_limit)


def test_limits_are_created_changed_and_others_left_alone(prefect_server: ServerInfo) -> None:
    job, other = f"bingobackup:job-{uuid.uuid4().hex[:8]}", f"bingobackup:other-{uuid.uuid4().hex[:8]}"
    apply_tag_limits({job: 2, other: 5})
    assert (_limit(job), _limit(other)) == (2, 5)
    apply_tag_limits({job: 1})
    assert (_limit(job), _limit(other)) == (1, 5)


def _hold_slot(tag: str, task_run: uuid.UUID) -> None:
    """Take one slot of `tag` as Prefect's task engine does, and never give it back (a killed run)."""
    with get_client(sync_client=True) as client:
        client.increment_concurrency_slots_with_lease(
            names=[f"tag:{tag}"],
            slots=1,
            mode="concurrency",
            lease_duration=SLOT_LEASE_SECONDS,
            holder=ConcurrencyLeaseHolder(type="task_run", id=task_run),
        )


def test_slots_a_killed_run_holds_are_reported_at_start_and_freed_for_the_job_only(
    prefect_server: ServerInfo, caplog: pytest.LogCaptureFixture
) -> None:
    job = f"job-{uuid.uuid4().hex[:8]}"
    tag, node, sibling = f"bingobackup:{job}", f"bingobackup:{job}:node:n1", f"bingobackup:{job}x"
    limits = {tag: 2, node: 1, sibling: 1}
    dead = uuid.uuid4()

    @flow
    def starts_a_run() -> None:
        ensure_tag_limits(limits, job)

    starts_a_run()
    for held_tag in (tag, node, sibling):
        _hold_slot(held_tag, dead)
    assert apply_tag_limits(limits) == [
        HeldSlots(tag, 2, (str(dead),)),
        HeldSlots(node, 1, (str(dead),)),
        HeldSlots(sibling, 1, (str(dead),)),
    ]
    starts_a_run()  # the operator is told why the run may wait, and what to do
    assert f"concurrency slots already held: {tag} (1 of 2), {node} (1 of 1)" in caplog.text
    assert f"`bingobackup job free-slots {job}`" in caplog.text

    # Freeing the job's slots leaves another job whose name merely starts the same alone.
    assert sorted(h.tag for h in delete_tag_limits(tag)) == [tag, node]
    assert [h.tag for h in apply_tag_limits(limits)] == [sibling]
    with get_client(sync_client=True) as client:
        assert client.read_concurrency_limit_by_tag(node).concurrency_limit == 1  # set again
        # The freed limit really admits a new holder (Prefect's own reset would not).
        response = client.increment_concurrency_slots_with_lease(
            names=[f"tag:{node}"], slots=1, mode="concurrency", lease_duration=SLOT_LEASE_SECONDS
        )
    assert response.json()["limits"], "the slot of the freed limit could not be taken"


def _count_without_lease(tag: str, slots: int) -> None:
    """Slots counted with no lease behind them: what a run holding them leaves when the Prefect
    server restarts (its leases are kept in memory), so no expiry ever frees them."""
    with get_client(sync_client=True) as client:
        client.request(
            "PATCH",
            "/v2/concurrency_limits/{id_or_name}",
            path_params={"id_or_name": f"tag:{tag}"},
            json={"active_slots": slots},
        )


def test_slots_counted_with_no_holder_are_named_and_a_backup_run_frees_its_jobs_at_start(
    prefect_server: ServerInfo, caplog: pytest.LogCaptureFixture
) -> None:
    """Found with the demo: a run killed by `demo --stop`, then the server restarted: the
    job's slots stayed counted without leases, nothing reported them, and every later run of
    the job waited for them for ever. Now they are reported, and a backup run, which holds
    its job's run slot (no other run of the job is going), frees its job's at once."""
    job = f"job-{uuid.uuid4().hex[:8]}"
    tag, node = f"bingobackup:{job}", f"bingobackup:{job}:node:n1"
    limits = {tag: 2, node: 2}
    apply_tag_limits(limits)
    _count_without_lease(tag, 2)
    _count_without_lease(node, 1)
    assert apply_tag_limits(limits) == [HeldSlots(tag, 2, (), 2), HeldSlots(node, 2, (), 1)]

    @flow
    def starts_a_run(sole: bool) -> None:
        ensure_tag_limits(limits, job, sole=sole)

    starts_a_run(False)  # a restore run: told, and what to do
    assert f"{tag} (2 of 2, 2 with no holder)" in caplog.text
    assert f"`bingobackup job free-slots {job}`" in caplog.text
    assert len(apply_tag_limits(limits)) == 2

    starts_a_run(True)  # a backup run in its run slot: freed
    assert "still taken by a run that is gone were freed" in caplog.text
    assert apply_tag_limits(limits) == []
    with get_client(sync_client=True) as client:
        response = client.increment_concurrency_slots_with_lease(
            names=[f"tag:{tag}"], slots=2, mode="concurrency", lease_duration=SLOT_LEASE_SECONDS
        )
    assert response.json()["limits"], "the freed job limit did not admit two new holders"
