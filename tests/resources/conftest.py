"""Fixtures for resource tests: an in-memory registry, users, and the demo cloud registered."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from support.resources import CloudKeys, instance_id_named
from support.testkeys import ACCESS_KEY, SECRET_KEY

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.resources.clouds import register_cloud
from bingobackup.resources.models import CloudRegistration, User
from bingobackup.resources.store import InMemoryRegistryStore

if TYPE_CHECKING:
    from bingobackup.sim.server import RunningSimulator


@pytest.fixture(scope="session")
def cloud_keys() -> CloudKeys:
    """The keys the `sim` fixture was started with."""
    return CloudKeys(ACCESS_KEY, SECRET_KEY)


@pytest.fixture
def store() -> InMemoryRegistryStore:
    return InMemoryRegistryStore()


@pytest.fixture
def admin() -> User:
    return User(name="root", role="admin")


@pytest.fixture
def operator() -> User:
    return User(name="olga", role="operator", groups=["ops"])


@pytest.fixture
def backup_host_a(cloud_client: BingoCloudClient) -> str:
    return instance_id_named(cloud_client, "backup-host-cluster-a")


@pytest.fixture
def registration(sim: RunningSimulator, cloud_keys: CloudKeys, backup_host_a: str) -> CloudRegistration:
    return CloudRegistration(
        name="demo",
        address="127.0.0.1",
        port=sim.port,
        ssl=False,
        access_key=cloud_keys.access_key,
        secret_key=cloud_keys.secret_key,
        backup_host=backup_host_a,
    )


@pytest.fixture
def registered(
    store: InMemoryRegistryStore, admin: User, registration: CloudRegistration
) -> CloudRegistration:
    return register_cloud(store, admin, registration, retry_window_seconds=2.0)
