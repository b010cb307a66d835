"""A team's deployment on one machine: PostgreSQL, the Prefect server on it (`server start
--database`), and one worker per backup host of two clusters. Each cluster's backup job runs
on its own host's worker, both at once; a restore job brings a cluster-a disk back in
cluster-b through cluster-b's worker; the pool's catalog is whole and the restored bytes are
the backed-up ones. The database URL's password never reaches the console or the server log."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import UUID

import pytest
import yaml
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter
from prefect.flow_runs import resume_flow_run
from support.cli import invoke
from support.flow import POOL_PASSPHRASE, Registered, local_dedup_pool, register_cloud_and_pool
from support.postgres import running_postgres
from support.worker import running_worker, wait_until_polling, worker_environment

from bingobackup.checksums import file_sha256
from bingobackup.cli import prefect_server
from bingobackup.cli.prefect_server import ServerInfo
from bingobackup.cloud.client import BingoCloudClient
from bingobackup.restore.verification import verification_code
from bingobackup.sim.server import RunningSimulator
from bingobackup.specs.restore import load_restore_spec
from deployments.runs import wait_for_run

DATABASE_PASSWORD = f"pg-secret-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def team_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ServerInfo, str]]:
    """The Prefect server of a BINGOBACKUP_HOME of its own, on PostgreSQL; (it, the database URL)."""
    from prefect.settings import PREFECT_LOGGING_TO_API_ENABLED, temporary_settings

    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BINGOBACKUP_WORK_POOL", f"bb-multihost-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("BINGOBACKUP_POOL_PASSPHRASE", POOL_PASSPHRASE)
    for name in ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING", "PREFECT_SERVER_API_AUTH_STRING"):
        monkeypatch.delenv(name, raising=False)
    with running_postgres(quote(DATABASE_PASSWORD, safe="")) as database:
        try:
            started = invoke("server", "start", "--database", database)
            assert "its data: postgresql+asyncpg://bingobackup:***@127.0.0.1:" in started, started
            assert DATABASE_PASSWORD not in started + invoke("server", "status")
            info = prefect_server.status()
            assert info is not None and info.log_path is not None
            with temporary_settings(
                updates={**prefect_server.client_settings(info), PREFECT_LOGGING_TO_API_ENABLED: False}
            ):
                yield info, database
            assert DATABASE_PASSWORD not in info.log_path.read_text()
        finally:
            prefect_server.stop_server()


def _run_id(started: str) -> UUID:
    return UUID(started.split("/runs/flow-run/")[1].split()[0])


def _submitting_worker(client: SyncPrefectClient, run_id: UUID) -> str:
    """The name of the worker that submitted the run, from its event (persisted a moment later)."""
    deadline = time.monotonic() + 60
    while True:
        event_filter = EventFilter(  # made anew each time: its window ends when it is made
            event=EventNameFilter(name=["prefect.worker.submitted-flow-run"]),
            related=EventRelatedFilter(id=[f"prefect.flow-run.{run_id}"]),
        )
        events = client.read_events(filter=event_filter, limit=10).events
        if events or time.monotonic() > deadline:
            assert len(events) == 1, events
            return str(events[0].resource.name)
        time.sleep(0.5)  # the pace of reading the API, not a wait for an event


def _paused_run_id(client: SyncPrefectClient, run_id: UUID) -> UUID:
    deadline = time.monotonic() + 120
    while True:
        run = client.read_flow_run(run_id)
        if run.state is not None and run.state.is_paused():
            return run.id
        assert run.state is None or not run.state.is_final(), run.state
        assert time.monotonic() < deadline, f"the restore never paused for its code: {run.state}"
        time.sleep(0.3)  # the pace of reading the API, not a wait for an event


def _postgres_deployments(database: str) -> set[str]:
    """The deployment names the PostgreSQL database holds (read there, not through the API)."""
    import asyncpg

    async def read() -> set[str]:
        connection = await asyncpg.connect(database.replace("+asyncpg", ""))
        try:
            return {row["name"] for row in await connection.fetch("SELECT name FROM deployment")}
        finally:
            await connection.close()

    return asyncio.run(read())


def test_two_clusters_back_up_at_once_on_their_own_hosts_workers_over_a_postgresql_server(
    team_server: tuple[ServerInfo, str],
    sim: RunningSimulator,
    cloud_client: BingoCloudClient,
    tmp_path: Path,
) -> None:
    _info, database = team_server
    pool_dir = tmp_path / "pool"  # one pool every backup host reaches (here: the same filesystem)
    registered: Registered = register_cloud_and_pool(sim, cloud_client, pool_dir, local_dedup_pool(pool_dir))
    host_a, host_b = registered.hosts["cluster-a"], registered.hosts["cluster-b"]
    vms = {i.name: i for i in cloud_client.describe_instances()}
    source_a, source_b, attach_b = vms["centos6-legacy"], vms["debian-tools"], vms["web-b-01"]
    jobs = {"cluster-a": f"mh-a-{registered.cloud}", "cluster-b": f"mh-b-{registered.cloud}"}
    contents = {"cluster-a": source_a.name, "cluster-b": source_b.name}
    for cluster, name in jobs.items():
        spec = registered.spec(
            cluster, name=name, content=[{"vm": contents[cluster]}], schedule={"kind": "manual"}
        )
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(spec))
        invoke("job", "create", str(tmp_path / f"{name}.yaml"))

    pool = os.environ["BINGOBACKUP_WORK_POOL"]
    env = worker_environment(pool)
    logs = {host: tmp_path / f"worker-{host}.log" for host in (host_a, host_b)}
    with (
        running_worker(host_a, env, logs[host_a]) as worker_a,
        running_worker(host_b, env, logs[host_b]) as worker_b,
    ):
        wait_until_polling(worker_a, pool, host_a, logs[host_a])
        wait_until_polling(worker_b, pool, host_b, logs[host_b])

        # Both clusters' jobs started together: each host's worker takes its own.
        runs = {cluster: _run_id(invoke("job", "start", name)) for cluster, name in jobs.items()}
        with get_client(sync_client=True) as client:
            done = {
                cluster: wait_for_run(client, run, timeout=240, poll_seconds=0.5)
                for cluster, run in runs.items()
            }
            for cluster, final in done.items():
                assert final.state_type == "COMPLETED", (cluster, final.message, logs)
            submitted_by = {cluster: _submitting_worker(client, run) for cluster, run in runs.items()}
            flow_runs = {cluster: client.read_flow_run(run) for cluster, run in runs.items()}
        assert submitted_by["cluster-a"].startswith(f"{host_a}@"), submitted_by
        assert submitted_by["cluster-b"].startswith(f"{host_b}@"), submitted_by
        assert {c: r.work_queue_name for c, r in flow_runs.items()} == {
            "cluster-a": host_a,
            "cluster-b": host_b,
        }
        a, b = flow_runs["cluster-a"], flow_runs["cluster-b"]
        assert a.start_time and a.end_time and b.start_time and b.end_time
        assert a.start_time < b.end_time and b.start_time < a.end_time, "the two backups did not overlap"
        # The simulator's attach records: each cluster's disks were read through its own host.
        attached = sim.stats().max_attached_per_host
        assert attached.get(host_a, 0) >= 1 and attached.get(host_b, 0) >= 1, attached

        # Cross-cluster restore: cluster-a's disk comes back in cluster-b, on cluster-b's worker.
        [disk_a] = source_a.block_devices
        restore_name = f"mh-restore-{registered.cloud}"
        restore: dict[str, Any] = {
            "version": 1,
            "name": restore_name,
            "kind": "disk",
            "cloud": registered.cloud,
            "backup_host": host_b,
            "pool": registered.pool,
            "source": {"vm": source_a.name, "set": "latest"},
            "target": {
                "attach_to": attach_b.instance_id,
                "disks": [{"volume": disk_a.volume_id, "name": "from-cluster-a", "storage": "sto-b-local"}],
            },
            "schedule": {"kind": "manual"},
        }
        (tmp_path / "restore.yaml").write_text(yaml.safe_dump(restore))
        invoke("job", "create", str(tmp_path / "restore.yaml"))
        restore_run = _run_id(invoke("job", "start", restore_name))
        with get_client(sync_client=True) as client:
            paused = _paused_run_id(client, restore_run)
            resume_flow_run(paused, run_input={"code": verification_code(load_restore_spec(restore))})
            final = wait_for_run(client, restore_run, timeout=240, poll_seconds=0.5)
            assert final.state_type == "COMPLETED", final.message
            assert _submitting_worker(client, restore_run).startswith(f"{host_b}@")
        assert worker_a.poll() is None and worker_b.poll() is None

    [restored] = [v for v in cloud_client.describe_volumes() if v.name == "from-cluster-a"]
    assert restored.storage_id == "sto-b-local"
    assert file_sha256(registered.volume_file(restored.volume_id)) == file_sha256(
        registered.volume_file(disk_a.volume_id)
    )

    # The catalog is whole and names each set's run and backup host.
    checked = invoke("catalog", "check", "--pool", str(pool_dir))
    assert "2 committed set(s); 0 damaged, 0 missing" in checked, checked
    sets = json.loads(
        invoke(
            "catalog",
            "query",
            "SELECT job_name, backup_host, run_id, status FROM backup_sets",
            "--pool",
            str(pool_dir),
            "--format",
            "json",
        )
    )
    assert sorted((s["job_name"], s["backup_host"], s["run_id"], s["status"]) for s in sets) == sorted(
        (jobs[c], registered.hosts[c], str(runs[c]), "ok") for c in jobs
    )
    # The jobs live in PostgreSQL, not in a SQLite file under the home.
    assert set(jobs.values()) | {restore_name} <= _postgres_deployments(database)
    assert not list((tmp_path / "home" / "prefect").glob("*.db"))
