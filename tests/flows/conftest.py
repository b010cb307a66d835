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
from bingobackup.resources.clouds import register_cloud
from bingobackup.resources.hosts import activate_backup_host, register_backup_host
from bingobackup.resources.pools import create_registered_pool
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
    instances = {i.name: i for i in cloud_client.describe_instances()}
    cluster_names = {c.cluster_id: c.name for c in cloud_client.describe_clusters()}
    hosts = {
        cluster_names[i.cluster_id]: i.instance_id
        for name, i in instances.items()
        if name.startswith("backup-host-")
    }
    cloud = register_cloud(
        store,
        LOCAL_ADMIN,
        {
            "name": f"sim-{suffix}",
            "address": "127.0.0.1",
            "port": sim.port,
            "access_key": sim.access_key,
            "secret_key": SECRET_KEY,
            "backup_host": next(iter(hosts.values())),
        },
    )
    for instance_id in hosts.values():
        host = register_backup_host(store, LOCAL_ADMIN, cloud.name, instance_id, client=cloud_client)
        host.device_root = str(sim.state_dir / "hosts" / instance_id)
        store.save_host(host)
        activate_backup_host(store, LOCAL_ADMIN, instance_id)
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
    return Registered(cloud.name, f"pool-{suffix}", pool_dir, hosts, sim, cloud_client)
