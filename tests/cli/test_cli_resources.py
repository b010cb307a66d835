"""The CLI as an operator uses it: register a cloud and backup hosts, browse, create a pool.

Runs the real `bingobackup` command against the simulator and the session's Prefect server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from support.cli import invoke
from support.testkeys import ACCESS_KEY, SECRET_KEY

from bingobackup.cli.prefect_server import ServerInfo
from bingobackup.cloud.client import BingoCloudClient


def test_register_browse_and_pool_through_the_cli(
    prefect_server: ServerInfo, sim, cloud_client: BingoCloudClient, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path / "home"))
    name = f"cli-{uuid.uuid4().hex[:6]}"
    hosts = {
        i.name: i.instance_id for i in cloud_client.describe_instances() if i.name.startswith("backup-host-")
    }
    host_a = hosts["backup-host-cluster-a"]
    out = invoke(
        "cloud",
        "register",
        "--name",
        name,
        "--address",
        "127.0.0.1",
        "--port",
        str(sim.port),
        "--access-key",
        ACCESS_KEY,
        "--secret-key",
        SECRET_KEY,
        "--backup-host",
        host_a,
        "--version",
        "7",
    )
    assert "keys verified" in out and "(V7)" in out and SECRET_KEY not in out
    out = invoke("host", "register", *hosts.values(), "--cloud", name, "--activate")
    assert out.count("activated") == 2
    assert "Ubuntu 20.04 x86_64" in invoke("host", "list")
    out = invoke("host", "authorize", *hosts.values(), "--group", "ops")
    assert out.count("groups ops") == 2
    assert "groups ops" in invoke("cloud", "authorize", name, "--group", "ops")
    listed = invoke("cloud", "list")
    assert name in listed and "V7" in listed and SECRET_KEY not in listed
    assert ACCESS_KEY not in listed and "AKTE…0001" in listed  # the key shown only masked
    tree = invoke("resources", "browse", "--cloud", name)
    for expected in ("cluster-a", "cluster-b", "linux_mul_disk", "system disk", "data disk", "backup host"):
        assert expected in tree
    by_storage = invoke("resources", "browse", "--cloud", name, "--by", "storage")
    ceph = by_storage.split("storage local-a")[0]  # ceph-a comes first: only linux_mul_disk is on it
    assert "storage ceph-a (sto-a-ceph) ceph, cluster-a" in ceph and "free of 8 TiB" in ceph
    assert "linux_mul_disk" in ceph and "linux_local" not in ceph and ceph.count("sto-a-ceph") == 4
    assert "storage local-b (sto-b-local)" in by_storage and "web-b-01" in by_storage
    found = invoke("resources", "search", "linux", "--cloud", name, "--exclude", "*nic*")
    assert "linux_local" in found and "linux_mul_nic" not in found
    out = invoke(
        "pool", "create", "--name", f"p-{name}", "--path", str(tmp_path / "pool"), "--kind", "standard"
    )
    assert "created" in out and (tmp_path / "pool" / "config.json").exists()


def test_wrong_secret_is_a_clear_error_without_the_secret(
    prefect_server: ServerInfo, sim, cloud_client, tmp_path
) -> None:
    host = next(i.instance_id for i in cloud_client.describe_instances() if i.name.startswith("backup-host-"))
    wrong = "wrong-secret-value-123"
    env = {**os.environ, "PREFECT_API_URL": prefect_server.url, "BINGOBACKUP_HOME": str(tmp_path)}
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("bingobackup")),
            "cloud",
            "register",
            "--name",
            f"bad-{uuid.uuid4().hex[:6]}",
            "--address",
            "127.0.0.1",
            "--port",
            str(sim.port),
            "--access-key",
            ACCESS_KEY,
            "--secret-key",
            wrong,
            "--backup-host",
            host,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "Error:" in result.stderr and "Secret" in result.stderr
    assert "Traceback" not in result.stderr
    assert wrong not in result.stderr + result.stdout
