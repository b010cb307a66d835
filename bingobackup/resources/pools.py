"""Pools as registered resources: created by admins, used by operators of authorized groups."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, SecretStr

from bingobackup.format.config import DEFAULT_CHUNK_SIZE
from bingobackup.pools import BlobStore, Pool
from bingobackup.pools.kinds import (
    NewPool,
    OpticalOptions,
    PoolFormatName,
    PoolHome,
    PoolKindName,
    PoolKindSpec,
    TapeOptions,
    pool_kind,
)
from bingobackup.pools.stats import PoolStats, pool_stats
from bingobackup.resources.access import (
    backup_host_for,
    may_use,
    not_found,
    require_admin,
    require_authorized,
)
from bingobackup.resources.errors import RegistrationError
from bingobackup.resources.models import BackupHost, PoolRegistration, User
from bingobackup.resources.store import RegistryStore
from bingobackup.specs.maintenance import PoolMaintenance
from bingobackup.specs.retention import RetentionPolicy
from bingobackup.storage.errors import PoolError, PoolNotFoundError
from bingobackup.storage.s3config import S3Settings

if TYPE_CHECKING:
    import pyarrow.fs as pafs


def create_registered_pool(
    store: RegistryStore,
    user: User,
    *,
    name: str,
    kind: PoolKindName,
    location: Path | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    encrypted: bool = False,
    passphrase: str | None = None,
    compression: str = "fast",
    groups: list[str] | None = None,
    pool_format: PoolFormatName | None = None,
    s3: S3Settings | None = None,
    backup_hosts: list[str] | None = None,
    tape: TapeOptions | None = None,
    optical: OpticalOptions | None = None,
    maintenance: PoolMaintenance | None = None,
    options: BaseModel | None = None,
) -> PoolRegistration:
    """Admin only: create the pool on its storage, then register it (secrets kept as secrets).

    Local kinds (dedup, standard, lanfree) take a directory `location`; an object pool takes
    `s3` (its bucket must exist; with Object Lock asked for, the bucket must have it)."""
    require_admin(user, f"create pool '{name}'")
    if store.get_pool(name) is not None:
        raise RegistrationError(f"A pool named '{name}' is already registered. Choose another name.")
    try:
        spec = pool_kind(kind)
    except PoolError as error:
        raise RegistrationError(str(error)) from None
    if encrypted and not passphrase:
        raise RegistrationError(
            f"Pool '{name}' is to be encrypted: give a passphrase (--passphrase or BINGOBACKUP_POOL_PASSPHRASE)."
        )
    if s3 is None and isinstance(options, S3Settings):
        s3 = options  # an object pool's options are its S3 settings
    registration = _new_registration(
        spec, name, location, s3, pool_format, groups or [], backup_hosts or [], maintenance
    )
    if encrypted and passphrase:
        registration.passphrase = SecretStr(passphrase)
    options = options or tape or optical  # the kind's own options model (pools/kinds.py), if any
    new = NewPool(chunk_size, encrypted, passphrase, compression)  # type: ignore[arg-type]
    spec.create(registration.home(), options, new)
    store.save_pool(registration)
    return registration


def _new_registration(
    spec: PoolKindSpec,
    name: str,
    location: Path | None,
    s3: S3Settings | None,
    pool_format: PoolFormatName | None,
    groups: list[str],
    backup_hosts: list[str],
    maintenance: PoolMaintenance | None,
) -> PoolRegistration:
    """The registration of a pool of kind `spec`, refused with what is missing."""
    if spec.storage == "s3":
        if s3 is None:
            raise RegistrationError(
                f"Object pool '{name}' needs --bucket (and --endpoint for a non-AWS service)."
            )
        where = s3.location
    else:
        if location is None:
            raise RegistrationError(f"Pool '{name}' needs --path: the directory that holds it.")
        where = str(Path(location).resolve())
    try:
        return PoolRegistration(
            name=name,
            kind=spec.name,
            location=where,
            groups=groups,
            format=pool_format if spec.fixed_format is None else None,
            s3=s3,
            backup_hosts=backup_hosts,
            library=spec.library_in(where),
            maintenance=maintenance or PoolMaintenance(),
        )
    except ValueError as error:
        raise RegistrationError(f"Pool '{name}' cannot be created: {error}") from None


def pool_store(registration: PoolRegistration) -> BlobStore:
    """The blob store a registered pool keeps its bytes in."""
    return registration.home().blob_store()


def pool_catalog_root(registration: PoolRegistration) -> tuple[str, pafs.FileSystem | None]:
    """(root, filesystem) of the pool's catalog, for catalog.CatalogWriter and Catalog: the
    pool's directory, or for an object pool `bucket/prefix` on pyarrow's S3 filesystem (on the
    pool's boto3 client where pyarrow cannot honour its TLS or Object Lock settings)."""
    if registration.s3 is not None:
        from bingobackup.storage.s3arrowfs import catalog_filesystem  # pyarrow: only when asked

        return registration.s3.catalog_root, catalog_filesystem(registration.s3, registration.name)
    return registration.location, None


def registered_pool_stats(registration: PoolRegistration) -> PoolStats:
    """`pool stats`: sets and bytes, with a tape pool's cartridges or an optical pool's discs."""
    home = registration.home()
    return pool_stats(home.blob_store(), pool_kind(registration.kind).media(home))


def check_backup_host_sees_pool(registration: PoolRegistration, backup_host_id: str) -> None:
    """A LAN-free pool is storage attached to certain backup hosts: refuse a job on any other
    host before it snapshots anything. Other kinds are reachable from every host."""
    if not pool_kind(registration.kind).needs_backup_hosts or backup_host_id in registration.backup_hosts:
        return
    raise RegistrationError(
        f"Pool '{registration.name}' is LAN-free storage attached to backup host(s) "
        f"{', '.join(registration.backup_hosts)}, not to {backup_host_id}; run the job on one of "
        "them, or choose a pool this host can reach. Nothing was snapshotted or created."
    )


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


def set_pool_retention(
    store: RegistryStore, user: User, name: str, policy: RetentionPolicy | None
) -> PoolRegistration:
    """Admin only: the pool's default retention (None: none, jobs without one keep everything)."""
    return _change_pool(store, user, name, "retention", retention=policy)


def list_pools(store: RegistryStore, user: User) -> list[PoolRegistration]:
    return [p for p in store.list_pools() if may_use(user, p.groups)]


def open_registered_pool(registration: PoolRegistration) -> Pool:
    passphrase = registration.passphrase.get_secret_value() if registration.passphrase else None
    if registration.s3 is None and not Path(registration.location).is_dir():
        raise PoolNotFoundError(
            f"pool directory {registration.location} of pool {registration.name} does not exist; "
            "check the path or mount the pool's storage (a LAN-free pool is mounted only on its "
            "backup hosts)"
        )
    return pool_kind(registration.kind).open(registration.home(), passphrase)


def unlock_in_background(registration: PoolRegistration) -> None:
    """Open the pool in a daemon thread and forget it: its key, unlocked once per process
    (`format.crypto`), is ready when the run opens the pool. Errors are the run's to report.
    An unencrypted pool has no key to unlock: nothing is done."""
    if registration.passphrase is None:
        return

    def unlock() -> None:
        with contextlib.suppress(Exception):
            open_registered_pool(registration)

    threading.Thread(target=unlock, name="pool-unlock", daemon=True).start()


def open_local_pool(
    kind: str, home: Path, passphrase: str | None, name: str, library: str | None = None
) -> Pool:
    """A pool whose home is a directory on this host, opened by its kind (no registry needed:
    `export-disk` uses it with the local pool index)."""
    return pool_kind(kind).open(PoolHome(name, str(home), library=library), passphrase)


def set_pool_maintenance(
    store: RegistryStore, user: User, name: str, maintenance: PoolMaintenance
) -> PoolRegistration:
    """Admin only: record a new maintenance schedule with the pool's registration."""
    return _change_pool(store, user, name, "maintenance schedule", maintenance=maintenance)


def _change_pool(
    store: RegistryStore, user: User, name: str, what: str, **changes: object
) -> PoolRegistration:
    require_admin(user, f"change the {what} of pool '{name}'")
    registration = find_pool(store, name)
    for field, value in changes.items():
        setattr(registration, field, value)
    store.save_pool(registration)
    return registration


def maintenance_host(
    store: RegistryStore, user: User, registration: PoolRegistration, requested: str | None = None
) -> BackupHost:
    """The backup host whose worker runs the pool's prune, GC and verify: the one asked for, else
    the one recorded with the pool (either checked: usable by `user` and reaching the pool), else
    one that reaches it — a LAN-free pool's first host, for other kinds the first activated
    backup host `user` may use, by instance id (so the choice is the same on every call)."""
    wanted = requested or registration.maintenance.host
    if wanted:
        host = backup_host_for(store, user, wanted)
        check_backup_host_sees_pool(registration, host.instance_id)
        return host
    if pool_kind(registration.kind).needs_backup_hosts:
        candidates = list(registration.backup_hosts)
    else:
        candidates = sorted(
            h.instance_id for h in store.list_hosts() if h.activated and may_use(user, h.groups)
        )
    if not candidates:
        raise RegistrationError(
            f"No activated backup host you may use can run the maintenance of pool '{registration.name}'. "
            "Register and activate one (`bingobackup host register`), then run "
            f"`bingobackup pool set-maintenance {registration.name} --host ID`."
        )
    return backup_host_for(store, user, candidates[0])
