"""Fixtures for flow tests: a simulated cloud registered in the session's Prefect server."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flow_support import POOL_PASSPHRASE, Registered
from testkeys import SECRET_KEY

from bingobackup.cli.prefect_server import ServerInfo
from bingobackup.cloud.client import BingoCloudClient
from bingobackup.resources.pools import create_registered_pool
from bingobackup.resources.simulated import register_simulated_cloud
from bingobackup.resources.users import LOCAL_ADMIN

if TYPE_CHECKING:
    from bingobackup.sim.server import RunningSimulator


@pytest.fixture
def registered(
    prefect_server: ServerInfo, sim: RunningSimulator, cloud_client: BingoCloudClient, tmp_path: Path
) -> Registered:
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
    pool_dir = tmp_path / "pool"
    create_registered_pool(
        store,
        LOCAL_ADMIN,
        name=f"pool-{suffix}",
        kind="dedup",
        location=pool_dir,
        encrypted=True,
        passphrase=POOL_PASSPHRASE,
    )
    host_ids = {cluster: host.instance_id for cluster, host in hosts.items()}
    return Registered(cloud.name, f"pool-{suffix}", pool_dir, host_ids, sim, cloud_client)
