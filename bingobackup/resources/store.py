"""Where registered resources are kept.

The engine only knows the `RegistryStore` protocol. In production the store is
`tasks.blocks.PrefectRegistryStore` (Prefect Blocks, so the UI and every worker see the same
state); engine tests use `InMemoryRegistryStore`.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from pydantic import BaseModel

from bingobackup.resources.models import BackupHost, CloudRegistration, PoolRegistration, User


class RegistryStore(Protocol):
    """get_* return None for an unknown key; delete_* of an unknown key does nothing."""

    def get_cloud(self, name: str) -> CloudRegistration | None: ...
    def save_cloud(self, cloud: CloudRegistration) -> None: ...
    def delete_cloud(self, name: str) -> None: ...
    def list_clouds(self) -> list[CloudRegistration]: ...

    def get_host(self, instance_id: str) -> BackupHost | None: ...
    def save_host(self, host: BackupHost) -> None: ...
    def delete_host(self, instance_id: str) -> None: ...
    def list_hosts(self) -> list[BackupHost]: ...

    def get_user(self, name: str) -> User | None: ...
    def save_user(self, user: User) -> None: ...
    def delete_user(self, name: str) -> None: ...
    def list_users(self) -> list[User]: ...

    def get_pool(self, name: str) -> PoolRegistration | None: ...
    def save_pool(self, pool: PoolRegistration) -> None: ...
    def delete_pool(self, name: str) -> None: ...
    def list_pools(self) -> list[PoolRegistration]: ...

    def jobs_using_cloud(self, name: str) -> list[str]:
        """Names of the jobs whose spec references cloud `name` (empty when none)."""
        ...


M = TypeVar("M", bound=BaseModel)


class _Table(Generic[M]):
    """Models by key, copied in and out so callers never share mutable state with the store."""

    def __init__(self) -> None:
        self._rows: dict[str, M] = {}

    def get(self, key: str) -> M | None:
        row = self._rows.get(key)
        return row.model_copy(deep=True) if row is not None else None

    def put(self, key: str, row: M) -> None:
        self._rows[key] = row.model_copy(deep=True)

    def delete(self, key: str) -> None:
        self._rows.pop(key, None)

    def all(self) -> list[M]:
        return [self._rows[key].model_copy(deep=True) for key in sorted(self._rows)]


class InMemoryRegistryStore:
    """A `RegistryStore` in a dict. `set_jobs_using_cloud` stands in for job specs."""

    def __init__(self) -> None:
        self._clouds: _Table[CloudRegistration] = _Table()
        self._hosts: _Table[BackupHost] = _Table()
        self._users: _Table[User] = _Table()
        self._pools: _Table[PoolRegistration] = _Table()
        self._jobs_by_cloud: dict[str, list[str]] = {}

    def get_cloud(self, name: str) -> CloudRegistration | None:
        return self._clouds.get(name)

    def save_cloud(self, cloud: CloudRegistration) -> None:
        self._clouds.put(cloud.name, cloud)

    def delete_cloud(self, name: str) -> None:
        self._clouds.delete(name)

    def list_clouds(self) -> list[CloudRegistration]:
        return self._clouds.all()

    def get_host(self, instance_id: str) -> BackupHost | None:
        return self._hosts.get(instance_id)

    def save_host(self, host: BackupHost) -> None:
        self._hosts.put(host.instance_id, host)

    def delete_host(self, instance_id: str) -> None:
        self._hosts.delete(instance_id)

    def list_hosts(self) -> list[BackupHost]:
        return self._hosts.all()

    def get_user(self, name: str) -> User | None:
        return self._users.get(name)

    def save_user(self, user: User) -> None:
        self._users.put(user.name, user)

    def delete_user(self, name: str) -> None:
        self._users.delete(name)

    def list_users(self) -> list[User]:
        return self._users.all()

    def get_pool(self, name: str) -> PoolRegistration | None:
        return self._pools.get(name)

    def save_pool(self, pool: PoolRegistration) -> None:
        self._pools.put(pool.name, pool)

    def delete_pool(self, name: str) -> None:
        self._pools.delete(name)

    def list_pools(self) -> list[PoolRegistration]:
        return self._pools.all()

    def jobs_using_cloud(self, name: str) -> list[str]:
        return list(self._jobs_by_cloud.get(name, []))

    def set_jobs_using_cloud(self, name: str, jobs: list[str]) -> None:
        self._jobs_by_cloud[name] = list(jobs)
