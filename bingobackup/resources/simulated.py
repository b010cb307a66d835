"""Registering a simulated BingoCloud the way an admin registers a real one.

The demo, the flow tests and the benchmark all need the same steps: register the cloud,
register and activate each cluster's backup host, and tell each host where the simulator
exposes its attached disks (STATE/hosts/<instance-id>, instead of / on a real host).
"""

from __future__ import annotations

from pathlib import Path

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.resources.clouds import register_cloud, update_cloud_settings
from bingobackup.resources.hosts import activate_backup_host, register_backup_host
from bingobackup.resources.models import BackupHost, CloudRegistration, User
from bingobackup.resources.store import RegistryStore

BACKUP_HOST_PREFIX = "backup-host-"


def register_simulated_cloud(
    store: RegistryStore,
    user: User,
    *,
    name: str,
    endpoint_port: int,
    access_key: str,
    secret_key: str,
    state_dir: Path,
) -> tuple[CloudRegistration, dict[str, BackupHost]]:
    """Register (or re-verify) the simulator on 127.0.0.1 and activate its backup hosts.

    Returns the cloud and its backup hosts keyed by cluster name.
    """
    client = BingoCloudClient(f"http://127.0.0.1:{endpoint_port}/", access_key, secret_key)
    cluster_names = {c.cluster_id: c.name for c in client.describe_clusters()}
    instances = sorted(
        (i for i in client.describe_instances() if i.name.startswith(BACKUP_HOST_PREFIX)),
        key=lambda i: i.name,
    )
    settings = {
        "address": "127.0.0.1",
        "port": endpoint_port,
        "ssl": False,
        "access_key": access_key,
        "secret_key": secret_key,
        "backup_host": instances[0].instance_id,
    }
    if store.get_cloud(name) is None:
        cloud = register_cloud(store, user, {"name": name, **settings})
    else:
        cloud = update_cloud_settings(store, user, name, **settings)  # type: ignore[arg-type]
    hosts: dict[str, BackupHost] = {}
    for instance in instances:
        host = store.get_host(instance.instance_id) or register_backup_host(
            store, user, cloud.name, instance.instance_id, client=client
        )
        host.device_root = str(Path(state_dir) / "hosts" / instance.instance_id)
        store.save_host(host)
        hosts[cluster_names[instance.cluster_id]] = activate_backup_host(store, user, instance.instance_id)
    return cloud, hosts
