"""A job's runs act as the owner recorded when the job was created or edited, not as the `user`
a run started in the Prefect UI (a *Custom run*) names: Prefect OSS lets anybody who reaches
the UI set any parameter."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.flow_engine import run_flow
from support.flow import POOL_PASSPHRASE, Registered, run_log_into
from typer.testing import CliRunner

from bingobackup.cli.main import app
from bingobackup.resources.hosts import authorize
from bingobackup.resources.models import User
from bingobackup.resources.pools import create_registered_pool
from bingobackup.resources.users import LOCAL_ADMIN
from deployments.jobs import delete_job, list_jobs, read_job
from flows.backup import backup

runner = CliRunner()
OPERATOR = User(name="op-a", role="operator", groups=["ops-a"])
OTHER_OPERATOR = User(name="op-b", role="operator", groups=["ops-b"])
ADMIN = User(name="boss", role="admin", groups=[])


@dataclass
class Team:
    registered: Registered
    admin_pool: str  # authorized to no group: only admins may use it
    spec_file: Path


@pytest.fixture
def team(registered: Registered, job_pool: str, tmp_path: Path) -> Iterator[Team]:
    """Three users; op-a's group may use the cloud, cluster-a's backup host and the pool."""
    from tasks.blocks import PrefectRegistryStore

    store = PrefectRegistryStore()
    admin_pool = f"{registered.pool}-admin"
    create_registered_pool(
        store,
        LOCAL_ADMIN,
        name=admin_pool,
        kind="dedup",
        location=tmp_path / "admin-pool",
        encrypted=True,
        passphrase=POOL_PASSPHRASE,
    )
    authorize(store, LOCAL_ADMIN, "cloud", [registered.cloud], ["ops-a"])
    authorize(store, LOCAL_ADMIN, "host", [registered.hosts["cluster-a"]], ["ops-a"])
    authorize(store, LOCAL_ADMIN, "pool", [registered.pool], ["ops-a"])
    spec_file = tmp_path / "job.yaml"
    spec_file.write_text(yaml.safe_dump(registered.spec(name=f"owned-{registered.cloud}")))
    for user in (OPERATOR, OTHER_OPERATOR, ADMIN):
        store.save_user(user)
    try:
        yield Team(registered, admin_pool, spec_file)
    finally:
        for job in list_jobs():
            if job.name.startswith(f"owned-{registered.cloud}"):
                delete_job(job.name)
        # Users registered make every other test's user-less command fail: remove them.
        for user in (OPERATOR, OTHER_OPERATOR, ADMIN):
            store.delete_user(user.name)


def as_user(monkeypatch: pytest.MonkeyPatch, user: User, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("BINGOBACKUP_USER", user.name)
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output + (str(result.exception) if result.exception else "")


def test_a_ui_run_naming_admin_still_acts_as_the_operator_who_created_the_job(
    team: Team, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    code, output = as_user(monkeypatch, OPERATOR, "job", "create", str(team.spec_file))
    assert code == 0, output
    job = read_job(f"owned-{team.registered.cloud}")
    assert job.user == "op-a"
    code, output = as_user(monkeypatch, OPERATOR, "job", "show", job.name)
    assert "runs as op-a" in output

    # What a Custom run in the UI can send: another spec, and a `user` of its choosing.
    forged = {
        "spec": {**job.spec.model_dump(mode="json", by_alias=True), "pool": team.admin_pool},
        "user": ADMIN.name,
    }
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment(job.deployment_id)
        assert "user" not in deployment.parameters
        assert "user" not in (deployment.parameter_openapi_schema or {})["properties"]  # not in the UI's form
        flow_run = client.create_flow_run_from_deployment(job.deployment_id, parameters=forged)
    with run_log_into(caplog):
        # As the worker's flow-run process runs it, in this process.
        state = cast(State, asyncio.run(run_flow(backup, flow_run=flow_run, return_type="state")))  # type: ignore[arg-type]

    assert state.is_failed()
    with pytest.raises(Exception, match=f"User 'op-a' .* is not authorized to use pool '{team.admin_pool}'"):
        state.result()
    assert "The run's `user` parameter ('boss') is ignored" in caplog.text
    assert "the owner recorded when the job was created or edited, 'op-a'" in caplog.text


def test_editing_a_job_checks_the_editor_and_makes_them_the_owner(
    team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = as_user(monkeypatch, OPERATOR, "job", "create", str(team.spec_file))
    assert code == 0, output
    name = f"owned-{team.registered.cloud}"

    # op-b may use none of the job's resources: neither editing nor cloning it makes op-b its owner.
    code, output = as_user(monkeypatch, OTHER_OPERATOR, "job", "edit", name, str(team.spec_file))
    assert code != 0 and "User 'op-b' (groups: ops-b) is not authorized to use cloud" in output
    code, output = as_user(monkeypatch, OTHER_OPERATOR, "job", "clone", name, "--name", f"{name}-copy")
    assert code != 0 and "User 'op-b' (groups: ops-b) is not authorized to use cloud" in output
    assert read_job(name).user == "op-a"
    assert all(job.name != f"{name}-copy" for job in list_jobs())

    # An admin's edit is checked against the admin and records the admin as the owner.
    code, output = as_user(monkeypatch, ADMIN, "job", "edit", name, str(team.spec_file))
    assert code == 0, output
    edited = read_job(name)
    assert edited.user == "boss"
    with get_client(sync_client=True) as client:
        assert "runs as boss" in (client.read_deployment(edited.deployment_id).description or "")


def test_only_an_admin_saves_hooks_and_a_run_cannot_change_them(
    team: Team, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Hooks are shell commands on the backup host: an operator may not save a job with one,
    and a Custom run of an admin's job whose spec carries another pre-script is refused before
    any command runs (the spec is a run parameter the UI lets anybody change)."""
    marker = tmp_path / "forged-ran"
    hooked = team.registered.spec(
        name=f"owned-{team.registered.cloud}",
        content=[{"vm": "linux_local"}],
        options={"post_script": {"command": f"touch {tmp_path / 'saved-ran'}"}},
    )
    team.spec_file.write_text(yaml.safe_dump(hooked))
    code, output = as_user(monkeypatch, OPERATOR, "job", "create", str(team.spec_file))
    assert code != 0
    assert "User 'op-a' (role operator) may not save a job with a post_script" in " ".join(output.split())
    code, output = as_user(monkeypatch, ADMIN, "job", "create", str(team.spec_file))
    assert code == 0, output
    job = read_job(hooked["name"])

    forged_options = {
        **job.spec.options.model_dump(mode="json"),
        "pre_script": {"command": f"touch {marker}"},
    }
    forged = {"spec": {**job.spec.model_dump(mode="json", by_alias=True), "options": forged_options}}
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run_from_deployment(job.deployment_id, parameters=forged)
    state = cast(State, asyncio.run(run_flow(backup, flow_run=flow_run, return_type="state")))  # type: ignore[arg-type]

    assert state.is_failed()
    with pytest.raises(Exception, match="pre-script or post-script differ from those saved with the job"):
        state.result()
    assert not marker.exists() and not (tmp_path / "saved-ran").exists()
    # The job as saved runs, its own post-script included.
    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run_from_deployment(job.deployment_id)
    state = cast(State, asyncio.run(run_flow(backup, flow_run=flow_run, return_type="state")))  # type: ignore[arg-type]
    assert state.is_completed(), state.message
    assert (tmp_path / "saved-ran").exists()
