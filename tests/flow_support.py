"""A registered simulated cloud, backup hosts and a pool, for flow tests."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testkeys import SECRET_KEY

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.resources.simulated import register_simulated_cloud
from bingobackup.resources.users import LOCAL_ADMIN

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


def register_cloud_and_pool(
    sim: RunningSimulator,
    client: BingoCloudClient,
    pool_dir: Path,
    create_pool: Callable[[RegistryStore, str], str],
) -> Registered:
    """The simulated cloud and its backup hosts registered in the running Prefect server, under
    fresh names, plus the pool `create_pool(store, suffix)` registers (it returns its name)."""
    from tasks.blocks import PrefectRegistryStore

    store = PrefectRegistryStore()
    suffix = uuid.uuid4().hex[:8]
    cloud, hosts = register_simulated_cloud(
        store,
        LOCAL_ADMIN,
        name=f"sim-{suffix}",
        endpoint_port=sim.port,
        access_key=sim.access_key,
        secret_key=SECRET_KEY,
        state_dir=sim.state_dir,
    )
    pool = create_pool(store, suffix)
    host_ids = {cluster: host.instance_id for cluster, host in hosts.items()}
    return Registered(cloud.name, pool, pool_dir, host_ids, sim, client)
