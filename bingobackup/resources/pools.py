"""Pools as registered resources: created by admins, used by operators of authorized groups."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, SecretStr, model_validator

from bingobackup.format.config import DEFAULT_CHUNK_SIZE
from bingobackup.media.discs import DiscSet, OpticalSettings
from bingobackup.media.tapelib import LibrarySettings, TapeLibrary
from bingobackup.pools import BlobStore, LocalDirBlobStore, Pool, create_pool_in, open_pool_in
from bingobackup.pools.opticalpool import create_optical_pool, open_optical_pool
from bingobackup.pools.stats import PoolStats, optical_media, pool_stats, tape_media
from bingobackup.pools.tapepool import create_tape_pool, open_tape_pool
from bingobackup.resources.access import (
    backup_host_for,
    may_use,
    not_found,
    require_admin,
    require_authorized,
)
from bingobackup.resources.errors import RegistrationError
from bingobackup.resources.models import BackupHost, PoolFormatName, PoolKindName, PoolRegistration, User
from bingobackup.resources.store import RegistryStore
from bingobackup.specs.maintenance import PoolMaintenance
from bingobackup.specs.retention import RetentionPolicy
from bingobackup.storage.errors import PoolNotFoundError
from bingobackup.storage.s3config import S3Settings
from bingobackup.storage.s3store import S3BlobStore

if TYPE_CHECKING:
    import pyarrow.fs as pafs


class TapeOptions(BaseModel):
    """How a new tape library is laid out (`pool create --kind tape`): emulated cartridges, or
    with `drives` the cartridges loaded in real Linux tape drives (barcodes[i] in drives[i])."""

    barcodes: list[str] = Field(default_factory=lambda: [f"BB{n:04d}L8" for n in range(1, 9)], min_length=1)
    capacity_bytes: int = Field(default=12 << 40, description="per cartridge (LTO-8: 12 TB native)")
    block_size: int = 256 << 10
    drives: list[str] = Field(default_factory=list, description="non-rewinding devices, /dev/nstN")

    @model_validator(mode="after")
    def _a_barcode_per_drive(self) -> TapeOptions:
        if self.drives and len(self.drives) != len(self.barcodes):
            raise ValueError(
                f"{len(self.drives)} drive(s) but {len(self.barcodes)} cartridge(s): give one --cartridge "
                "BARCODE per --drive, in the same order (a drive cannot read barcodes)"
            )
        self.settings()  # a rewinding /dev/stN is refused here, before anything is created
        return self

    def settings(self) -> LibrarySettings:
        return LibrarySettings(
            block_size=self.block_size,
            capacity_bytes=self.capacity_bytes,
            drives=dict(zip(self.barcodes, self.drives, strict=False)),
        )


class OpticalOptions(BaseModel):
    """Discs of a new optical pool (`pool create --kind optical`)."""

    disc_bytes: int = Field(default=25_025_314_816, ge=1 << 20, description="capacity of one disc (BD-25)")
    output_dir: Path | None = Field(default=None, description="where disc images go (default <path>/images)")
    burn_command: str | None = Field(default=None, description="run with each closed disc's image path")
    max_discs: int | None = Field(default=None, ge=1, description="blank discs the pool may use")

    def settings(self, pool_name: str, home: Path) -> OpticalSettings:
        return OpticalSettings(
            disc_bytes=self.disc_bytes,
            label_prefix=OpticalSettings.prefix_for(pool_name),
            output_dir=str(Path(self.output_dir or home / "images").resolve()),
            burn_command=self.burn_command,
            max_discs=self.max_discs,
        )


AVAILABLE_KINDS = ("dedup", "standard", "object", "lanfree", "tape", "optical")


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
) -> PoolRegistration:
    """Admin only: create the pool on its storage, then register it (secrets kept as secrets).

    Local kinds (dedup, standard, lanfree) take a directory `location`; an object pool takes
    `s3` (its bucket must exist; with Object Lock asked for, the bucket must have it)."""
    require_admin(user, f"create pool '{name}'")
    if store.get_pool(name) is not None:
        raise RegistrationError(f"A pool named '{name}' is already registered. Choose another name.")
    if kind not in AVAILABLE_KINDS:
        raise RegistrationError(
            f"Pool kind '{kind}' is not available in this version; use one of: {', '.join(AVAILABLE_KINDS)}."
        )
    if encrypted and not passphrase:
        raise RegistrationError(
            f"Pool '{name}' is to be encrypted: give a passphrase (--passphrase or BINGOBACKUP_POOL_PASSPHRASE)."
        )
    if kind == "object":
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
        registration = PoolRegistration(
            name=name,
            kind=kind,
            location=where,
            passphrase=SecretStr(passphrase) if encrypted and passphrase else None,
            groups=groups or [],
            format=pool_format if kind in ("object", "lanfree") else None,
            s3=s3,
            backup_hosts=backup_hosts or [],
            library=str(Path(where) / "library") if kind == "tape" else None,
            maintenance=maintenance or PoolMaintenance(),
        )
    except ValueError as error:
        raise RegistrationError(f"Pool '{name}' cannot be created: {error}") from None
    if kind == "tape":
        options = tape or TapeOptions()
        library = TapeLibrary.create(Path(registration.library or ""), options.settings(), options.barcodes)
        create_tape_pool(
            Path(where),
            library,
            chunk_size=chunk_size,
            encrypted=encrypted,
            passphrase=passphrase if encrypted else None,
            compression=compression,  # type: ignore[arg-type]
        )
        store.save_pool(registration)
        return registration
    if kind == "optical":
        create_optical_pool(
            Path(where),
            (optical or OpticalOptions()).settings(name, Path(where)),
            chunk_size=chunk_size,
            encrypted=encrypted,
            passphrase=passphrase if encrypted else None,
            compression=compression,  # type: ignore[arg-type]
        )
        store.save_pool(registration)
        return registration
    blobs = pool_store(registration)
    if isinstance(blobs, S3BlobStore):
        blobs.verify()
    create_pool_in(
        blobs,
        registration.on_pool_format,
        chunk_size=chunk_size,
        encrypted=encrypted,
        passphrase=passphrase if encrypted else None,
        compression=compression,  # type: ignore[arg-type]
    )
    store.save_pool(registration)
    return registration


def pool_store(registration: PoolRegistration) -> BlobStore:
    """The blob store a registered pool keeps its bytes in."""
    if registration.s3 is not None:
        return S3BlobStore(registration.s3, registration.name)
    return LocalDirBlobStore(Path(registration.location), registration.name)


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
    media = None
    if registration.kind == "tape" and registration.library:
        media = tape_media(TapeLibrary(Path(registration.library)), Path(registration.location))
    elif registration.kind == "optical":
        media = optical_media(DiscSet(Path(registration.location)))
    return pool_stats(pool_store(registration), media)


def check_backup_host_sees_pool(registration: PoolRegistration, backup_host_id: str) -> None:
    """A LAN-free pool is storage attached to certain backup hosts: refuse a job on any other
    host before it snapshots anything. Other kinds are reachable from every host."""
    if registration.kind != "lanfree" or backup_host_id in registration.backup_hosts:
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
    if registration.s3 is not None:
        return open_pool_in(pool_store(registration), passphrase)
    return open_local_pool(
        registration.kind, Path(registration.location), passphrase, registration.name, registration.library
    )


def open_local_pool(
    kind: str, home: Path, passphrase: str | None, name: str, library: str | None = None
) -> Pool:
    """A pool whose home is a directory on this host, opened by its kind (no registry needed:
    `export-disk` uses it with the local pool index)."""
    if kind == "optical":
        return open_optical_pool(home, passphrase, name=name)
    if kind == "tape":
        return open_tape_pool(home, TapeLibrary(Path(library) if library else home / "library"), passphrase)
    return open_pool_in(LocalDirBlobStore(home, name), passphrase)


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
    if registration.kind == "lanfree":
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
