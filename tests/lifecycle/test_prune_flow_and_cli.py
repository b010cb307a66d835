"""The `bingobackup-prune` flow and `bingobackup prune` / `sets delete` / `pool set-retention`
against the session's Prefect server: a job's retention from its deployment, the simulator
table, deletion only with --yes and by an admin, the summary artifact."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort
from support.lifecycle import CHUNK, Calendar
from typer.testing import CliRunner

from bingobackup.cli.main import app
from bingobackup.cli.prefect_server import ServerInfo
from bingobackup.resources.models import User
from bingobackup.resources.pools import create_registered_pool, open_registered_pool
from bingobackup.resources.users import LOCAL_ADMIN
from bingobackup.specs.job import load_job_spec
from catalog import Catalog, CatalogWriter
from deployments.jobs import create_job, delete_job
from flows.prune import prune
from tasks.blocks import PrefectRegistryStore

runner = CliRunner()
DAY0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)


class Setup:
    def __init__(self, pool: str, job: str, calendar: Calendar, pool_dir: Path) -> None:
        self.pool, self.job, self.calendar, self.pool_dir = pool, job, calendar, pool_dir

    def listed(self) -> list[str]:
        with Catalog.open(str(self.pool_dir), self.pool) as catalog:
            return list(catalog.list_sets()["set_id"])


@pytest.fixture
def setup(prefect_server: ServerInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    """A registered dedup pool with four daily sets of VM web, and a job keeping the last two."""
    monkeypatch.setenv("BINGOBACKUP_WORK_POOL", f"bb-prune-{uuid.uuid4().hex[:8]}")
    suffix = uuid.uuid4().hex[:8]
    pool_name, job_name = f"prune-{suffix}", f"nightly-{suffix}"
    pool_dir = tmp_path / "pool"
    registration = create_registered_pool(
        PrefectRegistryStore(), LOCAL_ADMIN, name=pool_name, kind="dedup", location=pool_dir, chunk_size=CHUNK
    )
    (tmp_path / "work").mkdir()
    calendar = Calendar(open_registered_pool(registration), CatalogWriter(str(pool_dir)), tmp_path / "work")
    for day in range(4):
        calendar.back_up(f"set-{day}", DAY0 + timedelta(days=day), {"web": "ok"}, job=job_name)
    spec: dict[str, Any] = {
        "version": 2, "name": job_name, "cloud": "demo", "backup_host": "i-PRUNE", "pool": pool_name,
        "content": [{"vm": "web"}], "schedule": {"kind": "manual", "timezone": "Asia/Shanghai"},
        "retention": {"keep_last": 2},
    }  # fmt: skip
    create_job(load_job_spec(spec), None)
    try:
        yield Setup(pool_name, job_name, calendar, pool_dir)
    finally:
        delete_job(job_name)


def test_the_prune_flow_dry_runs_then_prunes_and_leaves_a_summary(setup: Setup) -> None:
    dry = prune(job=setup.job, dry_run=True)
    assert (dry["to_remove"], dry["deleted"]) == (["set-0", "set-1"], [])
    assert setup.listed() == ["set-3", "set-2", "set-1", "set-0"]

    done = prune(pool=setup.pool)

    assert done["deleted"] == ["set-0", "set-1"] and not done["refused"]
    assert setup.listed() == ["set-3", "set-2"]
    for set_id in ("set-3", "set-2"):
        assert setup.calendar.restored_sha256(set_id, "web") == setup.calendar.disks[set_id]["web"]
    with get_client(sync_client=True) as client:
        [artifact, *_] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"prune-{setup.pool}"])),
            sort=ArtifactSort.CREATED_DESC,
        )
    assert artifact.type == "markdown"
    assert "2 set(s) deleted" in str(artifact.data) and "| set-0 |" in str(artifact.data)
    assert prune(pool=setup.pool)["to_remove"] == []


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def test_prune_cli_shows_the_simulator_and_deletes_only_with_yes(setup: Setup) -> None:
    out = invoke("prune", "--job", setup.job)
    lines = {line.split("│")[3].strip(): line for line in out.splitlines() if "│ set-" in line}
    assert "remove" in lines["set-0"] and "keep" in lines["set-3"] and "last" in lines["set-3"]
    assert "+08" in lines["set-3"] or "CST" in lines["set-3"]  # times in the job's time zone
    assert "Dry run: nothing was deleted" in out and setup.listed() == ["set-3", "set-2", "set-1", "set-0"]

    out = invoke("prune", "--job", setup.job, "--yes")
    assert "2 set(s) deleted: set-0, set-1" in out
    assert f"bingobackup gc --pool {setup.pool}" in out
    assert setup.listed() == ["set-3", "set-2"]
    assert "set-0" not in invoke("sets", "list", "--pool", str(setup.pool_dir))


def test_sets_delete_needs_yes_and_refuses_unknown_sets(setup: Setup) -> None:
    out = invoke("sets", "delete", "set-2", "--pool", setup.pool)
    assert "Nothing was deleted" in out and "set-2" in setup.listed()
    out = invoke("sets", "delete", "set-2", "--pool", setup.pool, "--yes")
    assert "backup set set-2 deleted" in out and "bingobackup gc" in out
    assert "set-2" not in setup.listed()
    assert setup.calendar.restored_sha256("set-3", "web") == setup.calendar.disks["set-3"]["web"]
    # Run again (as after a deletion killed past its tombstone): nothing left to do, exit 0.
    out = invoke("sets", "delete", "set-2", "--pool", setup.pool, "--yes")
    assert f"Already deleted from pool {setup.pool}: set-2 (nothing to do for them)" in out
    assert "deleted:" not in out and setup.listed() == ["set-3", "set-1", "set-0"]
    result = runner.invoke(app, ["sets", "delete", "set-2", "set-9", "--pool", setup.pool, "--yes"])
    assert result.exit_code != 0
    assert f"pool {setup.pool} holds no backup set set-9; nothing was deleted" in str(result.exception)


def test_an_operator_may_only_simulate(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    import bingobackup.resources.users as users

    monkeypatch.setattr(
        users, "resolve_user", lambda store, name: User(name="olga", role="operator", groups=[])
    )
    invoke("prune", "--pool", setup.pool)  # the simulator is for everyone
    for args in (
        ["prune", "--pool", setup.pool, "--yes"],
        ["sets", "delete", "set-0", "--pool", setup.pool, "--yes"],
    ):
        result = runner.invoke(app, args)
        assert "User 'olga' (role operator) may not" in str(result.exception) and "only admins may" in str(
            result.exception
        )
    assert setup.listed() == ["set-3", "set-2", "set-1", "set-0"]


def test_the_pool_default_retention_applies_to_a_job_without_one(setup: Setup) -> None:
    spec = load_job_spec(
        {
            "version": 2,
            "name": f"{setup.job}-b",
            "cloud": "demo",
            "backup_host": "i-PRUNE",
            "pool": setup.pool,
            "content": [{"vm": "db"}],
        }
    )
    create_job(spec, None)
    try:
        setup.calendar.back_up("b-0", DAY0, {"db": "ok"}, job=spec.name)
        setup.calendar.back_up("b-1", DAY0 + timedelta(days=1), {"db": "ok"}, job=spec.name)
        assert "b-0" not in prune(pool=setup.pool, dry_run=True)["to_remove"]
        assert "keep_last=1" in invoke("pool", "set-retention", setup.pool, "--keep-last", "1")
        assert prune(pool=setup.pool, dry_run=True)["to_remove"] == ["b-0", "set-0", "set-1"]
    finally:
        delete_job(spec.name)
