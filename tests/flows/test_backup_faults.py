"""Faults during a backup: dropped connections, a killed backup process, a run started while
the job runs, bad input.

No data already backed up is lost, nothing half-written becomes visible, and every error
names what is wrong."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.client.schemas.objects import ConcurrencyLeaseHolder, FlowRun, StateType
from prefect.states import Cancelled, Running
from support.flow import Registered, backup_process, bingobackup_command, kill_when
from support.pool_files import stored_chunk_ids
from support.sim_admin import injected_faults

from bingobackup.jobs.staging import snapshot_volume
from bingobackup.specs.job import load_job_spec
from bingobackup.specs.loading import SpecError
from catalog import Catalog
from flows.backup import backup, job_tag, run_backup_now, run_tag, summary_rows_from_state
from tasks.limits import delete_tag_limits


def committed_sets(registered: Registered) -> list[str]:
    with Catalog.open(str(registered.pool_dir), pool=registered.pool) as cat:
        return list(cat.list_sets()["set_id"])


def test_dropped_connections_are_retried_and_the_backup_succeeds(registered: Registered) -> None:
    with injected_faults(registered.sim, {"drop_rate": 0.3, "throttle_rate": 0.1, "seed": 7}):
        state = run_backup_now(load_job_spec(registered.spec(content=[{"vm": "linux_local"}])))
    assert state.is_completed(), state.message
    assert len(committed_sets(registered)) == 1
    assert sum(registered.sim.stats().requests.values()) > 0


def test_killed_backup_leaves_no_set_and_the_rerun_cleans_up_and_resends_little(
    registered: Registered, tmp_path: Path, prefect_server
) -> None:
    spec = registered.spec(
        content=[{"vm": "linux_mul_disk"}],
        options={"read_limits": [{"rate": "8MiB/s"}], "retry": {"count": 0, "interval_minutes": 0}},
    )

    def reading_a_disk() -> bool:  # a temporary volume is attached to the backup host
        staged = any(
            v.name.startswith("bingobackup-tmp") and v.attachments
            for v in registered.client.describe_volumes()
        )
        return staged and len(stored_chunk_ids(registered.pool_dir)) >= 3

    with backup_process(spec, tmp_path, prefect_server.url) as (process, env):
        kill_when(process, reading_a_disk, "reading a disk")
    assert committed_sets(registered) == []  # nothing half-written is visible
    stored_before = stored_chunk_ids(registered.pool_dir)
    assert [s for s in registered.client.describe_snapshots()]  # the dead run left its snapshots

    # The dead run's task runs still hold their concurrency slots (Prefect frees them ~75 s
    # later); the operator frees them, as the rerun's warning says.
    freed = subprocess.run(
        bingobackup_command("job", "free-slots", spec["name"]),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert freed.returncode == 0, freed.stderr
    assert f"bingobackup:{spec['name']}" in freed.stdout and "(Crashed)" in freed.stdout

    rerun = run_backup_now(load_job_spec({**spec, "options": {"retry": {"count": 0, "interval_minutes": 0}}}))
    assert rerun.is_completed(), rerun.message
    assert len(committed_sets(registered)) == 1
    assert not list(registered.client.describe_snapshots())
    assert not [v for v in registered.client.describe_volumes() if v.name.startswith("bingobackup-tmp")]
    # The killed run no longer shows as Running in the Prefect UI (marked when its slots were freed).
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["bingobackup-backup"])))
    killed = [
        r
        for r in runs
        if r.parameters["spec"]["name"] == spec["name"] and r.id != rerun.state_details.flow_run_id
    ]
    assert [r.state_type for r in killed] == [StateType.CRASHED]
    assert "its slots were freed by hand" in str(killed[0].state.message if killed[0].state else "")
    with Catalog.open(str(registered.pool_dir), pool=registered.pool) as cat:
        sent = int(cat.query("SELECT bytes_sent FROM backup_sets")["bytes_sent"][0])
        chunks = cat.query("SELECT digest, length FROM chunks")
    total = int(chunks["length"].sum())
    already = int(chunks[chunks["digest"].isin(stored_before)]["length"].sum())
    # The chunks the killed run had stored are reused, not sent again.
    assert already > 0
    assert sent <= total - already


def test_wrong_pool_passphrase_refused_before_any_snapshot(registered: Registered) -> None:
    from pydantic import SecretStr

    from tasks.blocks import PrefectRegistryStore

    store = PrefectRegistryStore()
    pool = store.get_pool(registered.pool)
    assert pool is not None
    pool.passphrase = SecretStr("not the passphrase")
    store.save_pool(pool)
    state = run_backup_now(load_job_spec(registered.spec()))
    assert state.is_failed()
    with pytest.raises(Exception, match="passphrase") as info:
        state.result()
    assert "not the passphrase" not in str(info.value)
    assert not list(registered.client.describe_snapshots())


@pytest.mark.parametrize(
    ("change", "needle"),
    [({"cloud": "no-such-cloud"}, "no-such-cloud"), ({"pool": "no-such-pool"}, "no-such-pool")],
)
def test_unknown_cloud_or_pool_is_named(registered: Registered, change: dict, needle: str) -> None:
    state = run_backup_now(load_job_spec({**registered.spec(), **change}))
    assert state.is_failed()
    with pytest.raises(Exception, match=needle):
        state.result()


def test_malformed_spec_is_refused_before_the_flow_runs(registered: Registered) -> None:
    with pytest.raises(SpecError, match="parallel_vms"):
        load_job_spec({**registered.spec(), "options": {"parallel_vms": "many"}})


def test_a_second_run_while_the_job_runs_does_nothing_and_leaves_the_first_ones_snapshots(
    registered: Registered,
) -> None:
    spec = load_job_spec(registered.spec(content=[{"vm": "linux_local"}]))
    vm = next(i for i in registered.client.describe_instances() if i.name == "linux_local")
    # The first run is going: it holds the job's run slot and has snapshotted a disk.
    with get_client(sync_client=True) as client:
        client.create_concurrency_limit(tag=run_tag(spec.name), concurrency_limit=1)
        client.increment_concurrency_slots_with_lease(
            names=[f"tag:{run_tag(spec.name)}"],
            slots=1,
            mode="concurrency",
            lease_duration=60,
            holder=ConcurrencyLeaseHolder(type="flow_run", id=uuid.uuid4()),
        )
    first_runs = snapshot_volume(registered.client, spec.name, vm.block_devices[0].volume_id, {})
    requests_before = sum(registered.sim.stats().requests.values())

    second = run_backup_now(spec)
    assert second.is_cancelled()
    assert f"job {spec.name} is already running" in str(second.message)
    assert f"bingobackup job free-slots {spec.name}" in str(second.message)
    assert summary_rows_from_state(second) == (
        "",
        [{"VM": "(run was cancelled before any VM)", "status": second.message}],
    )  # what `backup run` prints
    assert sum(registered.sim.stats().requests.values()) == requests_before  # the cloud untouched
    assert [s.snapshot_id for s in registered.client.describe_snapshots()] == [first_runs.snapshot_id]
    assert committed_sets(registered) == []

    # The first run was in fact killed: once its slot is freed, the next run cleans up after it.
    delete_tag_limits(job_tag(spec.name))
    third = run_backup_now(spec)
    assert third.is_completed(), third.message
    assert not list(registered.client.describe_snapshots())
    assert len(committed_sets(registered)) == 1


def test_runs_whose_process_died_are_marked_crashed_by_the_jobs_next_run(
    registered: Registered, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_job_spec(registered.spec(content=[{"vm": "linux_local"}]))

    def running_run(job: str) -> FlowRun:
        with get_client(sync_client=True) as client:
            made = client.create_flow_run(backup, parameters={"spec": {"name": job}}, state=Running())
            return client.read_flow_run(made.id)

    dead = running_run(spec.name)  # its process was killed
    other_job = running_run(f"{spec.name}-other")
    starting = running_run(spec.name)  # just starting: it will find the job's slot held itself
    assert dead.start_time is not None and starting.start_time is not None
    # A lease (60 s) counts from between the two, instead of waiting a minute.
    between = dead.start_time + (starting.start_time - dead.start_time) / 2
    monkeypatch.setattr("tasks.limits.dead_if_started_before", lambda: between)

    state = run_backup_now(spec)
    assert state.is_completed(), state.message
    with get_client(sync_client=True) as client:
        marked = client.read_flow_run(dead.id)
        assert marked.state_type == StateType.CRASHED
        assert "found by the job's next run" in str(marked.state.message if marked.state else "")
        for alive in (other_job, starting):
            assert client.read_flow_run(alive.id).state_type == StateType.RUNNING
            client.set_flow_run_state(alive.id, Cancelled(), force=True)
