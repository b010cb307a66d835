"""A pool's maintenance schedule (issue 23): `pool create` / `pool set-maintenance` record it
with the pool and make it Prefect deployments of the prune, GC and verify flows on the work
queue of a backup host that reaches the pool; `job list` shows them with their next runs.

The maintenance flows are deployed by entrypoint and flow name; running them is tested with
the flows themselves.
"""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client
from support.cli import invoke
from support.flow import Registered
from typer.testing import CliRunner

from bingobackup.cli.main import app
from bingobackup.resources.errors import RegistrationError
from bingobackup.resources.models import BackupHost, PoolRegistration
from bingobackup.resources.pools import maintenance_host
from bingobackup.resources.store import InMemoryRegistryStore
from bingobackup.resources.users import LOCAL_ADMIN
from bingobackup.specs.maintenance import PoolMaintenance, parse_schedule_text
from bingobackup.specs.schedule import DailySchedule, MonthlySchedule, WeeklySchedule
from deployments.maintenance import MAINTENANCE_TAG, delete_pool_maintenance, list_maintenance

runner = CliRunner()


def test_create_and_change_a_pools_maintenance_deployments(
    registered: Registered, job_pool: str, tmp_path: Path
) -> None:
    name = f"mnt-{uuid.uuid4().hex[:8]}"
    host = registered.hosts["cluster-b"]
    out = invoke(
        "pool", "create", "--name", name, "--path", str(tmp_path / name),
        "--maintenance-host", host, "--prune", "daily@02:30", "--verify", "off",
    )  # fmt: skip
    assert "prune: daily: every 1 day(s) at 02:30 (UTC)" in out, out
    assert "gc: weekly: every 1 week(s) on sun at 03:00 (UTC)" in out and "verify: off" in out
    assert "2 maintenance deployment(s) on backup host" in out and host in out
    try:
        deployed = {m.task: m for m in list_maintenance(name)}
        assert sorted(deployed) == ["gc", "prune"]
        with get_client(sync_client=True) as client:
            for task, flow, entrypoint, rule in (
                ("prune", "bingobackup-prune", "flows.prune.prune", "FREQ=DAILY;INTERVAL=1;BYHOUR=2;BYMINUTE=30"),
                ("gc", "bingobackup-gc", "flows.gc.collect_garbage", "FREQ=WEEKLY;INTERVAL=1;WKST=MO;BYDAY=SU;BYHOUR=3"),
            ):  # fmt: skip
                deployment = client.read_deployment_by_name(f"{flow}/pool-{name}")
                assert deployment.id == deployed[task].deployment_id
                assert deployment.entrypoint == entrypoint
                assert deployment.parameters == {"pool": name}
                assert (deployment.work_pool_name, deployment.work_queue_name) == (job_pool, host)
                assert {MAINTENANCE_TAG, f"maintenance:{task}", f"pool:{name}", f"host:{host}"} <= set(
                    deployment.tags
                )
                (schedule,) = deployment.schedules
                assert rule in schedule.schedule.rrule  # type: ignore[union-attr]
                # The UI's run form is read from the flow's source once its module is installed.
                module = entrypoint.rpartition(".")[0]
                installed = importlib.util.find_spec(module) is not None
                assert deployment.enforce_parameter_schema == installed
                properties = (deployment.parameter_openapi_schema or {}).get("properties", {})
                assert ("pool" in properties) == installed

        # `job list` shows each with its kind, schedule kind, next run, pool and host.
        listed = invoke("job", "list")
        rows = [line for line in listed.splitlines() if f"pool-{name}" in line]
        assert len(rows) == 2, listed
        prune_row = next(row for row in rows if "maintenance: prune" in row)
        assert "daily" in prune_row and "02:30 UTC" in prune_row and "never ran" in prune_row
        assert any("maintenance: gc" in row and "weekly" in row and "03:00 UTC" in row for row in rows)

        # A change keeps the other schedules and the deployments that stay (same id, history).
        out = invoke("pool", "set-maintenance", name, "--gc", "off", "--verify", "monthly:15@04:00")
        assert "gc: off" in out and "prune: daily: every 1 day(s) at 02:30" in out, out
        after = {m.task: m for m in list_maintenance(name)}
        assert sorted(after) == ["prune", "verify"]
        assert after["prune"].deployment_id == deployed["prune"].deployment_id
        assert (
            "FREQ=MONTHLY;BYMONTH=1,2,3,4,5,6,7,8,9,10,11,12;BYMONTHDAY=15;BYHOUR=4"
            in after["verify"].schedules[0]
        )
        assert after["verify"].host == host and after["verify"].parameters == {"pool": name}

        # Stored with the pool's registration, the host included.
        from tasks.blocks import PrefectRegistryStore

        stored = PrefectRegistryStore().get_pool(name)
        assert stored is not None
        assert stored.maintenance == PoolMaintenance(
            prune=DailySchedule(at="02:30"),
            gc=None,
            verify=MonthlySchedule(dates=[15], at="04:00"),
            host=host,
        )

        # A schedule the command cannot read changes nothing and says what is accepted.
        result = runner.invoke(app, ["pool", "set-maintenance", name, "--prune", "yearly"])
        assert result.exit_code != 0
        assert "--prune schedule 'yearly' is not understood" in result.output
        assert "daily[@HH:MM]" in result.output
        assert {m.task for m in list_maintenance(name)} == {"prune", "verify"}
    finally:
        delete_pool_maintenance(name)
    assert list_maintenance(name) == []


def test_schedule_texts_and_their_refusals() -> None:
    assert parse_schedule_text("weekly:sat,sun@03:15", "--gc") == WeeklySchedule(
        weekdays=["sat", "sun"], at="03:15"
    )
    assert parse_schedule_text("monthly:last", "--verify") == MonthlySchedule(dates=["last"])
    assert parse_schedule_text("OFF", "--verify") is None
    assert parse_schedule_text(
        '{kind: daily, every: 2, at: "01:30", timezone: Asia/Shanghai}', "--prune"
    ) == (DailySchedule(every=2, at="01:30", timezone="Asia/Shanghai"))
    with pytest.raises(ValueError, match=r"--prune schedule 'daily@25:00': at must be a time of day HH:MM"):
        parse_schedule_text("daily@25:00", "--prune")
    with pytest.raises(
        ValueError, match=r"--gc schedule '\{kind: daily, every: 9\}': daily 'every' must be 1–5"
    ):
        parse_schedule_text("{kind: daily, every: 9}", "--gc")
    defaults = PoolMaintenance()
    assert (defaults.prune, defaults.gc, defaults.verify) == (
        DailySchedule(at="01:00"),
        WeeklySchedule(weekdays=["sun"], at="03:00"),
        MonthlySchedule(dates=[1], at="05:00"),
    )


def _host(instance_id: str, activated: bool = True) -> BackupHost:
    return BackupHost(
        instance_id=instance_id, cloud="demo", cluster_id="cluster-a", node_id="n1", activated=activated
    )


def test_the_maintenance_host_reaches_the_pool() -> None:
    store = InMemoryRegistryStore()
    dedup = PoolRegistration(name="shared", kind="dedup", location="/pools/shared")
    with pytest.raises(
        RegistrationError, match="No activated backup host you may use can run the maintenance"
    ):
        maintenance_host(store, LOCAL_ADMIN, dedup)
    for host in (_host("i-B"), _host("i-A", activated=False), _host("i-C")):
        store.save_host(host)
    # Any activated host reaches a shared pool: the first by id, the same on every call.
    assert maintenance_host(store, LOCAL_ADMIN, dedup).instance_id == "i-B"
    lanfree = PoolRegistration(name="san", kind="lanfree", location="/san", backup_hosts=["i-C"])
    assert maintenance_host(store, LOCAL_ADMIN, lanfree).instance_id == "i-C"
    with pytest.raises(RegistrationError, match="LAN-free storage attached to backup host"):
        maintenance_host(store, LOCAL_ADMIN, lanfree, "i-B")


def test_a_job_with_retention_gets_its_pools_prune_deployment(
    registered: Registered, job_pool: str, tmp_path: Path
) -> None:
    """The pool was registered before it had maintenance deployments: `job create` of a job with
    retention deploys the pool's prune on the job's backup host, so the retention is applied;
    with the pool's prune turned off it says that nothing prunes the job."""
    name = f"ret-{uuid.uuid4().hex[:8]}"
    spec_file = tmp_path / f"{name}.yaml"
    spec = registered.spec(name=name, version=2, retention={"keep_last": 2, "keep_daily": 7})
    spec_file.write_text(yaml.safe_dump(spec))
    assert list_maintenance(registered.pool) == []
    try:
        out = invoke("job", "create", str(spec_file))
        assert f"retention: pool {registered.pool}'s prune deployment applies it, daily" in out, out
        (prune,) = [m for m in list_maintenance(registered.pool) if m.task == "prune"]
        assert prune.host == registered.hosts["cluster-a"] and prune.parameters == {"pool": registered.pool}
        assert prune.work_pool == job_pool

        invoke("pool", "set-maintenance", registered.pool, "--prune", "off")
        assert [m.task for m in list_maintenance(registered.pool) if m.task == "prune"] == []
        out = invoke("job", "edit", name, str(spec_file))
        assert f"Pool {registered.pool}'s prune schedule is off" in " ".join(out.split()), out
        assert f"bingobackup prune --job {name} --yes" in " ".join(out.split())
        assert [m.task for m in list_maintenance(registered.pool) if m.task == "prune"] == []
    finally:
        invoke("job", "delete", name, "--yes")
        delete_pool_maintenance(registered.pool)
