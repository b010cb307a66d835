"""`bingobackup job …` and `bingobackup worker start` as an operator uses them, against the
simulated cloud: a job started from the CLI is executed to Completed by the backup host's
worker, and deleting the job keeps its backup set."""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from support.cli import invoke, refused, runner
from support.flow import POOL_PASSPHRASE, Registered, run_log_messages

from bingobackup.cli import worker as worker_cli
from bingobackup.cli.main import app
from bingobackup.cli.prefect_server import ServerInfo, client_environment


def backup_set_count(pool_dir: Path) -> int:
    out = invoke(
        "catalog",
        "query",
        "SELECT count(*) AS n FROM backup_sets",
        "--pool",
        str(pool_dir),
        "--format",
        "json",
    )
    return int(json.loads(out)[0]["n"])


def test_job_from_cli_runs_on_the_hosts_worker_and_delete_keeps_the_backup_set(
    registered: Registered,
    worker: subprocess.Popen[bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BINGOBACKUP_POOL_PASSPHRASE", POOL_PASSPHRASE)
    name = f"cli-{registered.cloud}"
    spec_file = tmp_path / "job.yaml"
    spec = registered.spec(
        name=name,
        content=[{"vm": "linux_local"}],
        schedule={"kind": "weekly", "weekdays": ["sun"], "at": "03:00", "timezone": "Asia/Shanghai"},
    )
    spec_file.write_text(yaml.safe_dump(spec))

    out = invoke("job", "create", str(spec_file))
    assert f"Job {name} created: weekly: every 1 week(s) on sun at 03:00 (Asia/Shanghai)" in out
    assert "next run: " in out and "CST" in out

    listed = invoke("job", "list")
    row = next(line for line in listed.splitlines() if name in line)
    assert "weekly" in row and registered.pool in row and "never ran" in row

    # The spec printed by `show --spec` is the job's, ready to edit and give back.
    shown = yaml.safe_load(invoke("job", "show", name, "--spec"))
    assert shown["schedule"]["weekdays"] == ["sun"] and shown["name"] == name
    shown["schedule"] = {"kind": "manual"}
    spec_file.write_text(yaml.safe_dump(shown))
    assert "changed: manual" in invoke("job", "edit", name, str(spec_file))

    # A clone is a job of its own with the same spec and schedule, under the new name.
    copy = f"{name}-copy"
    assert f"created as a copy of {name}" in invoke("job", "clone", name, "--name", copy)
    edited = yaml.safe_load(invoke("job", "show", name, "--spec"))
    assert yaml.safe_load(invoke("job", "show", copy, "--spec")) == {**edited, "name": copy}
    assert copy in invoke("job", "list") and "already" in refused("job", "clone", name, "--name", copy)
    invoke("job", "delete", copy, "--yes")

    assert backup_set_count(registered.pool_dir) == 0
    out = invoke("job", "start", name, "--wait", "--timeout", "240")
    assert ": Completed" in out, out
    assert worker.poll() is None
    assert backup_set_count(registered.pool_dir) == 1
    # The run's Logs tab (the API's log of the run the worker's process ran) has the VM's lines.
    run_id = out.split("/runs/flow-run/")[1].split()[0]
    vm = next(i for i in registered.client.describe_instances() if i.name == "linux_local")
    messages = run_log_messages(run_id, until=f"VM linux_local ({vm.instance_id}) finished")
    log = "\n".join(messages)
    assert f"VM linux_local ({vm.instance_id}) started (attempt 1)" in log, log
    assert any(
        m.startswith(f"VM linux_local ({vm.instance_id}) finished: read ") and "MB/s" in m for m in messages
    ), log

    listed = invoke("job", "list")
    assert "Completed" in next(line for line in listed.splitlines() if name in line)
    shown_text = invoke("job", "show", name)
    assert "Recent runs" in shown_text and "Completed" in shown_text

    pool_files = sorted(
        p.relative_to(registered.pool_dir) for p in registered.pool_dir.rglob("*") if p.is_file()
    )
    assert "kept in the pool" in invoke("job", "delete", name, "--yes")
    assert backup_set_count(registered.pool_dir) == 1
    assert sorted(
        p.relative_to(registered.pool_dir) for p in registered.pool_dir.rglob("*") if p.is_file()
    ) == (pool_files)
    assert "No job named" in refused("job", "show", name)


def test_job_create_refuses_an_unknown_backup_host_and_a_bad_schedule(
    registered: Registered, tmp_path: Path
) -> None:
    spec_file = tmp_path / "job.yaml"
    spec_file.write_text(yaml.safe_dump(registered.spec(backup_host="i-NOSUCH")))
    assert "i-NOSUCH" in refused("job", "create", str(spec_file))
    spec_file.write_text(yaml.safe_dump(registered.spec(schedule={"kind": "daily", "every": 6})))
    out = refused("job", "create", str(spec_file))
    assert "schedule" in out and "1–5" in out


def test_worker_and_its_flow_runs_get_the_commands_client_settings(
    registered: Registered, prefect_server: ServerInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker replaces itself with Prefect's; its flow-run processes inherit its
    environment, so that environment must carry what `client_settings` gives the CLI."""
    started: list[dict[str, str]] = []
    monkeypatch.setattr(worker_cli.os, "execvpe", lambda _file, _args, env: started.append(env))
    fork_server = {"BINGOBACKUP_FORK_SOCKET": "/run/test/forkserver.sock"}
    monkeypatch.setattr(worker_cli, "start_fork_server", lambda env, host: fork_server)
    monkeypatch.delenv("PREFECT_API_URL")  # an operator's shell: our local server, found by home
    invoke("worker", "start", "--host", registered.hosts["cluster-a"])
    (env,) = started
    assert env == {**os.environ, **client_environment(prefect_server), **fork_server}
    assert env["PREFECT_API_URL"] == prefect_server.url
    assert env["PREFECT_CLIENT_CSRF_SUPPORT_ENABLED"] == "False"
    assert Path(env["PREFECT_API_SSL_CERT_FILE"]).is_file()


def test_worker_on_a_machine_off_the_backup_host_list_refuses_to_start(
    registered: Registered, prefect_server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A host registered as a real one (device root `/`): the worker reads this machine's
    /etc/os-release (here a Debian one under tmp_path) and refuses before starting Prefect's."""
    from bingobackup.resources import hosts
    from bingobackup.resources.errors import IncompatibleBackupHost
    from tasks.blocks import PrefectRegistryStore

    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "os-release").write_text(
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
    )
    monkeypatch.setattr(hosts, "read_local_os", functools.partial(hosts.read_local_os, tmp_path))
    started: list[object] = []
    monkeypatch.setattr(worker_cli.os, "execvpe", lambda *args: started.append(args))
    store = PrefectRegistryStore()
    host = store.get_host(registered.hosts["cluster-a"])
    assert host is not None
    simulated_root = host.device_root
    host.device_root = "/"
    store.save_host(host)
    try:
        result = runner.invoke(app, ["worker", "start", "--host", host.instance_id])
    finally:
        host.device_root = simulated_root
        store.save_host(host)
    assert isinstance(result.exception, IncompatibleBackupHost) and not started
    message = str(result.exception)
    assert "This machine runs Debian GNU/Linux 12 (bookworm) on" in message
    assert "Supported: Ubuntu 18.04, Ubuntu 20.04, Ubuntu 22.04, CentOS 7.6, openEuler 20.03" in message
