"""The Prefect backup flow on the benchmark image, against a local server already running.

Runs inside `benchmarks.one flow`: starts our local Prefect server (as the CLI does, under a
temporary BINGOBACKUP_HOME) and the simulated BingoCloud, adds a VM whose only disk is the
image, registers cloud, hosts and pool as an admin would, and then times one run of the
backup flow. The simulator copies the volume twice during the run (snapshot, then the volume
staged on the backup host), which a real cloud does copy-on-write, so that copy time is
measured on its own and reported next to the flow's time.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.measure import peak_rss_bytes
from bingobackup.sparse import copy_sparse

VM_NAME = "bench-vm"
POOL_PASSPHRASE = "benchmark pool passphrase"


def _add_vm(admin_url: str, image: Path) -> str:
    body = json.dumps({"name": VM_NAME, "cluster": "cluster-a", "disks": [str(image)]}).encode()
    request = urllib.request.Request(
        f"{admin_url}/vms", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        return str(json.loads(response.read())["instance_id"])


def _copy_seconds(image: Path, work: Path) -> float:
    copy = work / "copy-probe.raw"
    started = time.perf_counter()
    copy_sparse(image, copy)
    seconds = time.perf_counter() - started
    copy.unlink()
    return seconds


def run_flow_backup(image: Path, work: Path) -> dict[str, Any]:
    os.environ["BINGOBACKUP_HOME"] = str(work / "home")
    os.environ.pop("PREFECT_API_URL", None)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from bingobackup.cli import prefect_server

    server = prefect_server.ensure_server()
    os.environ["PREFECT_API_URL"] = server.url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.url}):
            return _with_server(image, work)
    finally:
        prefect_server.stop_server()


def _with_server(image: Path, work: Path) -> dict[str, Any]:
    from bingobackup.cloud.client import BingoCloudClient
    from bingobackup.resources.pools import create_registered_pool
    from bingobackup.resources.simulated import register_simulated_cloud
    from bingobackup.resources.users import LOCAL_ADMIN
    from bingobackup.sim.server import start_simulator
    from bingobackup.specs.job import load_job_spec
    from flows.backup import backup
    from tasks.blocks import PrefectRegistryStore

    access_key, secret_key = "BENCH" + secrets.token_hex(6).upper(), secrets.token_hex(20)
    sim = start_simulator(work / "sim", access_key, secret_key, scenario="demo", port=0)
    try:
        _add_vm(sim.admin_url, image)
        client = BingoCloudClient(sim.endpoint, access_key, secret_key)
        store = PrefectRegistryStore()
        cloud, hosts = register_simulated_cloud(
            store,
            LOCAL_ADMIN,
            name="bench",
            endpoint_port=sim.port,
            access_key=access_key,
            secret_key=secret_key,
            state_dir=sim.state_dir,
        )
        create_registered_pool(
            store,
            LOCAL_ADMIN,
            name="bench-pool",
            kind="dedup",
            location=work / "flow-pool",
            encrypted=True,
            passphrase=POOL_PASSPHRASE,
        )
        vm = next(i for i in client.describe_instances() if i.name == VM_NAME)
        spec = load_job_spec(
            {
                "version": 1,
                "name": "bench-job",
                "cloud": cloud.name,
                "backup_host": next(h.instance_id for h in hosts.values() if h.cluster_id == vm.cluster_id),
                "pool": "bench-pool",
                "content": [{"vm": VM_NAME}],
                "options": {"retry": {"count": 0, "interval_minutes": 0}},
            }
        )
        started = time.perf_counter()
        state = backup(spec=spec, return_state=True)
        wall = time.perf_counter() - started
        result = state.result(raise_on_failure=False)
        if not isinstance(result, dict) or result.get("status") != "ok":
            raise RuntimeError(f"the benchmark's flow run did not succeed: {state.message or result}")
        return {
            "wall_seconds": wall,
            "copy_seconds": _copy_seconds(image, work),
            "rows": result["rows"],
            "peak_rss_bytes": peak_rss_bytes(),
        }
    finally:
        sim.stop()
