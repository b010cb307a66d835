"""Pools as registered resources: created by admins, used by operators of authorized groups."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from bingobackup.format.config import DEFAULT_CHUNK_SIZE
from bingobackup.pools import Pool, create_pool, open_pool
from bingobackup.resources.access import may_use, not_found, require_admin, require_authorized
from bingobackup.resources.errors import RegistrationError
from bingobackup.resources.models import PoolKindName, PoolRegistration, User
from bingobackup.resources.store import RegistryStore

# The four other kinds come with their own issue; until then they are refused by name.
LOCAL_KINDS = ("dedup", "standard")


def create_registered_pool(
    store: RegistryStore,
    user: User,
    *,
    name: str,
    kind: PoolKindName,
    location: Path,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    encrypted: bool = False,
    passphrase: str | None = None,
    compression: str = "fast",
    groups: list[str] | None = None,
) -> PoolRegistration:
    """Admin only: create the pool on disk, then register it (passphrase kept as a secret)."""
    require_admin(user, f"create pool '{name}'")
    if store.get_pool(name) is not None:
        raise RegistrationError(f"A pool named '{name}' is already registered. Choose another name.")
    if kind not in LOCAL_KINDS:
        raise RegistrationError(
            f"Pool kind '{kind}' is not available in this version; use one of: {', '.join(LOCAL_KINDS)}."
        )
    if encrypted and not passphrase:
        raise RegistrationError(
            f"Pool '{name}' is to be encrypted: give a passphrase (--passphrase or BINGOBACKUP_POOL_PASSPHRASE)."
        )
    registration = PoolRegistration(
        name=name,
        kind=kind,
        location=str(Path(location).resolve()),
        passphrase=SecretStr(passphrase) if encrypted and passphrase else None,
        groups=groups or [],
    )
    create_pool(
        location,
        kind,  # type: ignore[arg-type]
        name=name,
        chunk_size=chunk_size,
        encrypted=encrypted,
        passphrase=passphrase if encrypted else None,
        compression=compression,  # type: ignore[arg-type]
    )
    store.save_pool(registration)
    return registration


def find_pool(store: RegistryStore, name: str) -> PoolRegistration:
    pool = store.get_pool(name)
    if pool is None:
        raise not_found("pool", name, [p.name for p in store.list_pools()], "bingobackup pool list")
    return pool


def pool_for(store: RegistryStore, user: User, name: str) -> PoolRegistration:
    """The pool `user` may use, or a refusal naming the pool and its groups."""
    pool = find_pool(store, name)
    require_authorized(user, "pool", name, pool.groups)
    return pool


def list_pools(store: RegistryStore, user: User) -> list[PoolRegistration]:
    return [p for p in store.list_pools() if may_use(user, p.groups)]


def open_registered_pool(registration: PoolRegistration) -> Pool:
    passphrase = registration.passphrase.get_secret_value() if registration.passphrase else None
    return open_pool(registration.location, passphrase, name=registration.name)
