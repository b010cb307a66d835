"""A registered simulated cloud, backup hosts and a pool, for flow tests."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.resources.simulated import register_simulated_cloud
from bingobackup.resources.users import LOCAL_ADMIN
from support.testkeys import SECRET_KEY

if TYPE_CHECKING:
    import pytest

    from bingobackup.resources.store import RegistryStore
    from bingobackup.sim.server import RunningSimulator

POOL_PASSPHRASE = "pool passphrase for tests"


@contextmanager
def run_log_into(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """caplog also gets the Prefect loggers' records (the flow and task runs' logs the UI shows,
    and Prefect's own): Prefect's loggers do not propagate to the root logger caplog listens on."""
    logger = logging.getLogger("prefect")
    logger.addHandler(caplog.handler)
    try:
        yield
    finally:
        logger.removeHandler(caplog.handler)


def run_log_messages(flow_run_id: uuid.UUID | str, until: str) -> list[str]:
    """The messages of a flow run's log as the Prefect API (the UI's Logs tab) has them, read
    again until one contains `until`: a run's process ships its log in batches, the last
    ones possibly after the run's final state is set."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[uuid.UUID(str(flow_run_id))]))
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while True:
            messages = [log.message for log in client.read_logs(log_filter=log_filter, limit=200)]
            if any(until in m for m in messages) or time.monotonic() > deadline:
                return messages
            time.sleep(0.5)  # the pace of reading the API, not a wait for an event


def bingobackup_command(*args: str) -> list[str]:
    """The installed `bingobackup` command line, as an operator types it."""
    return [str(Path(sys.executable).with_name("bingobackup")), *args]


@contextmanager
def backup_process(
    spec: dict[str, Any], tmp_path: Path, api_url: str
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str]]]:
    """`bingobackup backup run` of `spec` in a session of its own (a SIGKILL of its group takes
    all of it, as a killed backup host would), and the environment for the commands after it."""
    spec_file = tmp_path / "job.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "PREFECT_API_URL": api_url, "BINGOBACKUP_HOME": str(tmp_path / "home")}
    process = subprocess.Popen(
        bingobackup_command("backup", "run", str(spec_file)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield process, env
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def kill_when(process: subprocess.Popen[bytes], ready: Callable[[], bool], what: str) -> None:
    """SIGKILL `process` and its group as soon as the state it works on shows `ready()`."""
    deadline = time.monotonic() + 120
    while not ready():
        assert process.poll() is None, f"the backup ended before {what}"
        assert time.monotonic() < deadline, f"the backup never got to {what}"
        time.sleep(0.1)  # the pace of looking at the simulator's state, not a wait for an event
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@dataclass
class Registered:
    cloud: str
    pool: str
    pool_dir: Path
    hosts: dict[str, str]  # cluster name → backup host instance id
    sim: RunningSimulator
    client: BingoCloudClient

    def spec(self, cluster: str = "cluster-a", **overrides: Any) -> dict[str, Any]:
        options = {"retry": {"count": 0, "interval_minutes": 0}, **overrides.pop("options", {})}
        return {
            "version": 1,
            "name": f"job-{self.cloud}",
            "cloud": self.cloud,
            "backup_host": self.hosts[cluster],
            "pool": self.pool,
            "content": [{"cluster": cluster}],
            "options": options,
            **overrides,
        }

    def volume_file(self, volume_id: str) -> Path:
        """For reading: a volume's file may be shared with snapshots; write with sim.write_volume."""
        return self.sim.state_dir / "volumes" / f"{volume_id}.raw"


def local_dedup_pool(
    pool_dir: Path, passphrase: str = POOL_PASSPHRASE
) -> Callable[[RegistryStore, str], str]:
    """For `register_cloud_and_pool`: an encrypted dedup pool in `pool_dir`, named `pool-<suffix>`."""
    from bingobackup.resources.pools import create_registered_pool

    def create(store: RegistryStore, suffix: str) -> str:
        create_registered_pool(
            store,
            LOCAL_ADMIN,
            name=f"pool-{suffix}",
            kind="dedup",
            location=pool_dir,
            encrypted=True,
            passphrase=passphrase,
        )
        return f"pool-{suffix}"

    return create


def object_dedup_pool(endpoint: str) -> Callable[[RegistryStore, str], str]:
    """For `register_cloud_and_pool`: an encrypted object pool in a new bucket of the S3 server
    at `endpoint` (moto), named `object-<suffix>`."""
    from bingobackup.resources.pools import create_registered_pool
    from bingobackup.storage.s3config import S3Settings
    from support.s3 import MOTO_KEYS, moto_client

    def create(store: RegistryStore, suffix: str) -> str:
        bucket = f"flows-{suffix}"
        moto_client(endpoint).create_bucket(Bucket=bucket)
        settings = S3Settings(
            bucket=bucket,
            prefix=f"pools/object-{suffix}",
            endpoint_url=endpoint,
            access_key_id=MOTO_KEYS["aws_access_key_id"],
            secret_access_key=MOTO_KEYS["aws_secret_access_key"],
        )
        create_registered_pool(
            store,
            LOCAL_ADMIN,
            name=f"object-{suffix}",
            kind="object",
            s3=settings,
            encrypted=True,
            passphrase=POOL_PASSPHRASE,
        )
        return f"object-{suffix}"

    return create


def register_cloud_and_pool(
    sim: RunningSimulator,
    client: BingoCloudClient,
    pool_dir: Path,
    create_pool: Callable[[RegistryStore, str], str],
    secret_key: str = SECRET_KEY,
) -> Registered:
    """The simulated cloud and its backup hosts registered in the running Prefect server, under
    fresh names, plus the pool `create_pool(store, suffix)` registers (it returns its name).
    `secret_key` is the one the simulator was started with."""
    from tasks.blocks import PrefectRegistryStore

    store = PrefectRegistryStore()
    suffix = uuid.uuid4().hex[:8]
    cloud, hosts = register_simulated_cloud(
        store,
        LOCAL_ADMIN,
        name=f"sim-{suffix}",
        endpoint_port=sim.port,
        access_key=sim.access_key,
        secret_key=secret_key,
        state_dir=sim.state_dir,
    )
    pool = create_pool(store, suffix)
    host_ids = {cluster: host.instance_id for cluster, host in hosts.items()}
    return Registered(cloud.name, pool, pool_dir, host_ids, sim, client)
