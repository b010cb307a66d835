"""Prefect Block types for registered resources, and the registry store built on them.

Each Block type *is* the engine model (it inherits its fields and validation), so the
Prefect UI shows the same fields the CLI takes, and `SecretStr` fields are encrypted by
the server and masked in the UI. The engine never imports this module: it sees only the
`RegistryStore` protocol.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Generic, TypeVar, cast

from prefect.blocks.core import Block
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.exceptions import ObjectNotFound
from pydantic import BaseModel

from bingobackup.resources.models import BackupHost, CloudRegistration, PoolRegistration, User
from bingobackup.resources.store import InMemoryRegistryStore
from tasks.paging import read_all


class _ModelBlock(Block):
    """A Block whose fields are those of an engine model (`_model`)."""

    _model: ClassVar[type[BaseModel]]

    @classmethod
    def from_model(cls, model: BaseModel) -> Any:
        # Copy attribute by attribute: a dump would mask the SecretStr values.
        return cls.model_validate({name: getattr(model, name) for name in type(model).model_fields})

    def to_model(self) -> Any:
        return self._model.model_validate({name: getattr(self, name) for name in self._model.model_fields})


class BingoCloudBlock(_ModelBlock, CloudRegistration):
    """A registered BingoCloud: address, port, SSL, keys (the Secret Key is encrypted)."""

    _block_type_slug = "bingocloud"
    _block_type_name = "BingoCloud"
    _model = CloudRegistration


class BackupHostBlock(_ModelBlock, BackupHost):
    """A VM of a registered BingoCloud that runs the bingobackup agent."""

    _block_type_slug = "bingobackup-backup-host"
    _block_type_name = "BingoBackup backup host"
    _model = BackupHost


class BingoBackupUserBlock(_ModelBlock, User):
    """A bingobackup user: role (admin/operator) and user groups."""

    _block_type_slug = "bingobackup-user"
    _block_type_name = "BingoBackup user"
    _model = User


class PoolBlock(_ModelBlock, PoolRegistration):
    """A bingobackup pool: kind, location and the passphrase of an encrypted pool (encrypted)."""

    _block_type_slug = "bingobackup-pool"
    _block_type_name = "BingoBackup pool"
    _model = PoolRegistration


BLOCK_TYPES: tuple[type[_ModelBlock], ...] = (
    BingoCloudBlock,
    BackupHostBlock,
    BingoBackupUserBlock,
    PoolBlock,
)


def register_block_types() -> None:
    """Make the Block types known to the Prefect server (idempotent), so the UI can show them."""
    for block_type in BLOCK_TYPES:
        block_type.register_type_and_schema()


_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def block_document_name(key: str) -> str:
    """A Prefect block document name (lowercase letters, digits, dashes) for `key`.

    Keys that are not slugs already (instance ids such as `i-49ADD723`, user names) get a
    short hash of the exact key appended, so keys differing only in case never collide.
    """
    slug = _NOT_SLUG.sub("-", key.lower()).strip("-")
    if slug == key:
        return key
    digest = hashlib.blake2b(key.encode(), digest_size=4).hexdigest()
    return f"{slug[:50]}-{digest}" if slug else digest


M = TypeVar("M", bound=BaseModel)


class _BlockTable(Generic[M]):
    """Engine models of one kind, stored as block documents of `block_type`."""

    def __init__(self, block_type: type[_ModelBlock], key: Callable[[M], str]) -> None:
        self._block_type = block_type
        self._key = key

    @property
    def slug(self) -> str:
        return self._block_type.get_block_type_slug()

    def model_of(self, data: dict[str, Any]) -> M:
        """The engine model in a block document's data."""
        model: M = self._block_type.model_validate(data).to_model()
        return model

    def get(self, key: str) -> M | None:
        try:
            block = cast(_ModelBlock, self._block_type.load(block_document_name(key)))
        except ValueError:  # Prefect's "Unable to find block document named …"
            return None
        model: M = block.to_model()
        return model

    def put(self, model: M) -> None:
        self._block_type.from_model(model).save(block_document_name(self._key(model)), overwrite=True)

    def delete(self, key: str) -> None:
        try:
            self._block_type.delete(block_document_name(key))
        except (ValueError, ObjectNotFound):
            return

    def all(self) -> list[M]:
        with get_client(sync_client=True) as client:
            # A block type never registered (nothing saved yet) has no documents: [].
            documents = list(read_block_documents(client, [self.slug]))
        models = [self.model_of(doc["data"]) for doc in documents]
        return sorted(models, key=self._key)


def read_block_documents(client: SyncPrefectClient, slugs: list[str]) -> Iterator[dict[str, Any]]:
    """Every block document (as JSON, secrets included) of the block types `slugs`, page by
    page. Not `read_block_documents_by_type`: its endpoint ignores offset and limit and sends
    every document each time, so paging it never ends once a type has a page's worth (a
    registry of 200 backup hosts hung `pool create`). The filter endpoint pages."""
    return read_all(
        lambda offset, limit: client.request(
            "POST",
            "/block_documents/filter",
            json={
                "block_types": {"slug": {"any_": slugs}},
                "include_secrets": True,
                "offset": offset,
                "limit": limit,
            },
        ).json()
    )


def _names_cloud(parameters: Any, cloud: str) -> bool:
    """True when a `cloud: <name>` entry appears anywhere in a deployment's parameters."""
    if isinstance(parameters, dict):
        return parameters.get("cloud") == cloud or any(_names_cloud(v, cloud) for v in parameters.values())
    if isinstance(parameters, list):
        return any(_names_cloud(v, cloud) for v in parameters)
    return False


def _all_deployments() -> Iterator[Any]:
    with get_client(sync_client=True) as client:
        yield from read_all(lambda offset, limit: client.read_deployments(limit=limit, offset=offset))


class PrefectRegistryStore:
    """`RegistryStore` on the Prefect server named by the current Prefect settings."""

    def __init__(self) -> None:
        self._clouds: _BlockTable[CloudRegistration] = _BlockTable(BingoCloudBlock, lambda c: c.name)
        self._hosts: _BlockTable[BackupHost] = _BlockTable(BackupHostBlock, lambda h: h.instance_id)
        self._users: _BlockTable[User] = _BlockTable(BingoBackupUserBlock, lambda u: u.name)
        self._pools: _BlockTable[PoolRegistration] = _BlockTable(PoolBlock, lambda p: p.name)

    def get_cloud(self, name: str) -> CloudRegistration | None:
        return self._clouds.get(name)

    def save_cloud(self, cloud: CloudRegistration) -> None:
        self._clouds.put(cloud)

    def delete_cloud(self, name: str) -> None:
        self._clouds.delete(name)

    def list_clouds(self) -> list[CloudRegistration]:
        return self._clouds.all()

    def get_host(self, instance_id: str) -> BackupHost | None:
        return self._hosts.get(instance_id)

    def save_host(self, host: BackupHost) -> None:
        self._hosts.put(host)

    def delete_host(self, instance_id: str) -> None:
        self._hosts.delete(instance_id)

    def list_hosts(self) -> list[BackupHost]:
        return self._hosts.all()

    def get_user(self, name: str) -> User | None:
        return self._users.get(name)

    def save_user(self, user: User) -> None:
        self._users.put(user)

    def delete_user(self, name: str) -> None:
        self._users.delete(name)

    def list_users(self) -> list[User]:
        return self._users.all()

    def get_pool(self, name: str) -> PoolRegistration | None:
        return self._pools.get(name)

    def save_pool(self, pool: PoolRegistration) -> None:
        self._pools.put(pool)

    def delete_pool(self, name: str) -> None:
        self._pools.delete(name)

    def list_pools(self) -> list[PoolRegistration]:
        return self._pools.all()

    def jobs_using_cloud(self, name: str) -> list[str]:
        """Deployments (jobs) whose parameters contain `cloud: <name>` at any depth."""
        return sorted({d.name for d in _all_deployments() if _names_cloud(d.parameters, name)})

    def snapshot(self) -> InMemoryRegistryStore:
        """Every registration (clouds, hosts, users, pools) read at once, into a store of its own.

        For runs that only read the registry: resolving a job asks for its user, cloud, backup
        host, pool and the cloud's hosts, five round trips where this makes one per 200
        registrations (measured: the run's resolve step 0.22-0.24 s -> 0.16-0.20 s). Writes to
        the snapshot stay in it.
        """
        snapshot = InMemoryRegistryStore()
        tables: dict[str, tuple[_BlockTable[Any], Callable[[Any], None]]] = {
            table.slug: (table, save)
            for table, save in (
                (self._clouds, snapshot.save_cloud),
                (self._hosts, snapshot.save_host),
                (self._users, snapshot.save_user),
                (self._pools, snapshot.save_pool),
            )
        }
        with get_client(sync_client=True) as client:
            documents = read_block_documents(client, sorted(tables))
            for document in documents:
                table, save = tables[document["block_type"]["slug"]]
                save(table.model_of(document["data"]))
        return snapshot


# A registry snapshot a command read for its own checks, for the backup run it starts next
# in this process (`snapshot_handed_to_run`): (when read, the snapshot).
_handed: tuple[float, InMemoryRegistryStore] | None = None
_handed_lock = threading.Lock()
HANDED_SNAPSHOT_SECONDS = 5.0


@contextlib.contextmanager
def snapshot_handed_to_run(snapshot: InMemoryRegistryStore) -> Iterator[None]:
    """While the block runs, the backup run it starts in this process resolves its job from
    `snapshot` (`take_handed_snapshot`) instead of reading the registry again.

    `backup run` reads the registry to check the spec, then starts the run, whose resolve
    step read it again a few tenths of a second later: a round trip and the parsing of
    every registration (0.05-0.1 s of a 2 s backup). A change made in between is what a run
    started a moment earlier would also have missed. Taken once, and only within
    HANDED_SNAPSHOT_SECONDS; gone when the block ends, whatever the run did.
    """
    global _handed
    with _handed_lock:
        _handed = (time.monotonic(), snapshot)
    try:
        yield
    finally:
        with _handed_lock:
            _handed = None


def take_handed_snapshot() -> InMemoryRegistryStore | None:
    """The snapshot handed to this run (see `snapshot_handed_to_run`), or None: read one."""
    global _handed
    with _handed_lock:
        handed, _handed = _handed, None
    if handed is None or time.monotonic() - handed[0] > HANDED_SNAPSHOT_SECONDS:
        return None
    return handed[1]
