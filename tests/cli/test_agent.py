"""The backup host agent as an admin installs it: `host install-command` prints the install
script, `worker install-service` writes a systemd unit whose ExecStart really starts a worker
that reports to the session's Prefect server, and `host list` shows it online."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import stat
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import pytest
from support.cli import invoke_stdout as invoke
from support.cli import refused, runner
from support.flow import POOL_PASSPHRASE, Registered
from support.worker import process_group, wait_until_polling

from bingobackup.cli.main import app
from bingobackup.cli.prefect_server import ServerInfo
from deployments.workpool import WORKER_SILENCE, polled_recently


def host_row(listing: str, instance_id: str) -> str:
    return next(line for line in listing.splitlines() if instance_id in line)


@pytest.fixture
def work_pool(prefect_server: ServerInfo, monkeypatch: pytest.MonkeyPatch) -> str:
    """A work pool of this test alone: no other test's worker polls its queues."""
    name = f"bb-agent-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("BINGOBACKUP_WORK_POOL", name)
    return name


def read_unit(path: Path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    unit.read_string(path.read_text())
    return unit


def test_install_command_prints_the_agent_install_script(
    registered: Registered, prefect_server: ServerInfo, work_pool: str, tmp_path: Path
) -> None:
    host = registered.hosts["cluster-a"]
    result = runner.invoke(app, ["host", "install-command", host], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    script = result.stdout
    assert (
        f"-m venv /opt/bingobackup\n/opt/bingobackup/bin/pip install bingobackup=={version('bingobackup')}\n"
        in script
    )
    assert (
        f"PREFECT_API_URL={prefect_server.url} /opt/bingobackup/bin/bingobackup worker install-service "
        f"--host {host} --pool {work_pool}\n"
    ) in script
    assert script.rstrip().endswith(f"systemctl enable --now bingobackup-worker-{host}.service")
    # The session's server listens on 127.0.0.1: the admin is told a backup host cannot reach it.
    assert "loopback" in result.stderr and "--api-url" in result.stderr
    (tmp_path / "install.sh").write_text(script)
    subprocess.run(["sh", "-n", str(tmp_path / "install.sh")], check=True)

    other = invoke(
        "host", "install-command", host, "--api-url", "http://prefect.example:4200/api/", "--venv", "/srv/bb"
    )
    assert (
        "PREFECT_API_URL=http://prefect.example:4200/api /srv/bb/bin/bingobackup worker install-service"
        in other
    )
    assert "credentials" in refused(
        "host", "install-command", host, "--api-url", "http://u:pw@prefect.example/api"
    )
    assert "i-NOSUCH" in refused("host", "install-command", "i-NOSUCH")


def test_install_command_for_a_server_with_basic_auth_asks_for_the_string_and_prints_none(
    registered: Registered, prefect_server: ServerInfo, work_pool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "PREFECT_API_AUTH_STRING", "auth string for tests"
    )  # how this shell reaches the server
    result = runner.invoke(app, ["host", "install-command", registered.hosts["cluster-a"]])
    assert result.exit_code == 0, result.output
    assert ': "${PREFECT_API_AUTH_STRING:?set PREFECT_API_AUTH_STRING' in result.stdout
    assert "export PREFECT_API_AUTH_STRING\n" in result.stdout
    assert "requires its basic-auth string" in result.stderr
    assert "auth string for tests" not in result.output


def test_install_service_refuses_a_missing_api_url_and_one_with_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    args = ("worker", "install-service", "--host", "i-1", "--unit-dir", str(tmp_path))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert "Set PREFECT_API_URL" in refused(*args)
    monkeypatch.setenv("PREFECT_API_URL", "http://admin:s3cret@prefect.example:4200/api")
    error = refused(*args)
    assert "credentials" in error and "PREFECT_API_AUTH_STRING" in error and "s3cret" not in error
    assert list(tmp_path.iterdir()) == []


def test_service_unit_starts_a_worker_that_host_list_shows_online(
    registered: Registered,
    prefect_server: ServerInfo,
    work_pool: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, idle_host = registered.hosts["cluster-a"], registered.hosts["cluster-b"]
    listing = invoke("host", "list")
    assert "offline" in host_row(listing, host) and "never" in host_row(listing, host)
    assert f"within the last {int(WORKER_SILENCE.total_seconds())} s" in listing

    env_file, unit_dir = tmp_path / "worker.env", tmp_path / "units"
    unit_dir.mkdir()
    install = (
        "worker",
        "install-service",
        "--host",
        host,
        "--unit-dir",
        str(unit_dir),
        "--env-file",
        str(env_file),
    )
    # This shell reaches the server with an auth string: the unit's environment file keeps it.
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "auth string for tests")
    dry = invoke(*install, "--dry-run")
    assert "ExecStart=" in dry and list(unit_dir.iterdir()) == []
    out = invoke(*install)
    unit_path = unit_dir / f"bingobackup-worker-{host}.service"
    assert f"systemctl daemon-reload && systemctl enable --now {unit_path.name}" in out
    assert unit_path.read_text() == dry

    service = read_unit(unit_path)["Service"]
    assert service["Type"] == "simple" and service["Restart"] == "always"
    assert service["EnvironmentFile"] == f"-{env_file}"
    environment = dict(item.split("=", 1) for item in shlex.split(service["Environment"]))
    assert environment == {"PREFECT_API_URL": prefect_server.url, "BINGOBACKUP_WORK_POOL": work_pool}
    assert POOL_PASSPHRASE not in unit_path.read_text()
    assert "auth string for tests" not in unit_path.read_text() + out
    assert env_file.read_text() == "PREFECT_API_AUTH_STRING=auth string for tests\n"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600

    # As systemd runs it: the unit's environment, not the test's (the import path aside, so the
    # worker runs this checkout's code), and a home of its own.
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": os.environ.get("PYTHONPATH", str(Path(__file__).parents[2])),
        "HOME": str(tmp_path),
        "BINGOBACKUP_HOME": str(tmp_path / "home"),
        **environment,
    }
    log = tmp_path / "worker.log"
    with process_group(shlex.split(service["ExecStart"]), env, log) as worker:
        wait_until_polling(worker, work_pool, host, log)
        listing = invoke("host", "list")
    row = host_row(listing, host)
    assert "online" in row and "offline" not in row and re.search(r"\b\d+ s ago\b", row)
    idle = host_row(listing, idle_host)
    assert "offline" in idle and "never" in idle


def test_a_heartbeat_older_than_the_silence_is_offline() -> None:
    now = datetime.now(UTC)
    assert polled_recently(now - WORKER_SILENCE + timedelta(seconds=5))
    assert not polled_recently(now - WORKER_SILENCE - timedelta(seconds=1))
    assert not polled_recently(None)
