"""The registry of pool kinds (kopia's storage providers): each kind says in one place where
its pool lives, which on-pool format it writes, what options it takes on `pool create`, and how
it is created, opened, measured and scanned. `pool create`, pool registrations and `pool stats`
look a kind up here; no other module branches on a kind's name.

A *kind* is how a pool is registered and reached (six of them); its *format* is how chunks are
laid out in it (dedup or standard, format/config.py): object and LAN-free pools write either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field, ValidationError, model_validator

from bingobackup.format.compression import CompressionSetting
from bingobackup.format.config import PoolKind as PoolFormatName
from bingobackup.media.discs import DiscSet, OpticalSettings, parse_disc_size
from bingobackup.media.tape import LibrarySettings
from bingobackup.media.tapelib import TapeLibrary
from bingobackup.pools.open import create_pool_in, open_pool_in
from bingobackup.pools.opticalpool import create_optical_pool, open_optical_pool, scan_discs
from bingobackup.pools.pool import Pool
from bingobackup.pools.scan_home import recover_optical_home, recover_tape_home
from bingobackup.pools.stats import MediaUsage, optical_media, tape_media
from bingobackup.pools.stream import MediaPool, MediaScan
from bingobackup.pools.tapepool import create_tape_pool, open_tape_pool, scan_library
from bingobackup.storage.base import BlobStore
from bingobackup.storage.errors import PoolError
from bingobackup.storage.localdir import LocalDirBlobStore
from bingobackup.storage.s3config import S3Settings
from bingobackup.storage.s3store import S3BlobStore
from bingobackup.units import parse_size

PoolKindName = Literal["standard", "dedup", "object", "tape", "lanfree", "optical"]
__all__ = [
    "POOL_KINDS",
    "PoolFormatName",
    "PoolHome",
    "PoolKindName",
    "PoolKindSpec",
    "PoolOptionError",
    "pool_kind",
]


class PoolOptionError(PoolError):
    """A `pool create` option of a kind is wrong: names the option (the CLI's usage error)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class PoolHome:
    """Where one pool lives, as its registration (or the local pool index) records it."""

    name: str
    location: str  # the pool's directory; an object pool's s3://bucket/prefix
    s3: S3Settings | None = None
    library: str | None = None  # a tape pool's library directory
    format: PoolFormatName | None = None  # object and LAN-free pools: the format chosen

    @property
    def directory(self) -> Path:
        return Path(self.location)

    def blob_store(self) -> BlobStore:
        if self.s3 is not None:
            return S3BlobStore(self.s3, self.name)
        return LocalDirBlobStore(self.directory, self.name)

    def tape_library(self) -> TapeLibrary:
        return TapeLibrary(Path(self.library) if self.library else self.directory / "library")


@dataclass(frozen=True)
class NewPool:
    """What every kind's pool is created with (`pool create`)."""

    chunk_size: int
    encrypted: bool = False
    passphrase: str | None = None
    compression: CompressionSetting = "fast"

    def settings(self) -> dict[str, Any]:
        return {
            "chunk_size": self.chunk_size,
            "encrypted": self.encrypted,
            "passphrase": self.passphrase if self.encrypted else None,
            "compression": self.compression,
        }


@dataclass(frozen=True)
class HomeScan:
    """`pool scan`: what the media held and the home files written back from them."""

    recreated: list[str]
    found: MediaScan
    pool: MediaPool
    where: str


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


# -- each kind's functions ------------------------------------------------------------------
def _create_in_store(home: PoolHome, options: BaseModel | None, new: NewPool) -> None:
    store = home.blob_store()
    if isinstance(store, S3BlobStore):
        store.verify()  # the bucket exists, with Object Lock when the pool asks for it
    create_pool_in(store, home.format or "dedup", **new.settings())


def _open_in_store(home: PoolHome, passphrase: str | None) -> Pool:
    return open_pool_in(home.blob_store(), passphrase)


def _create_tape(home: PoolHome, options: BaseModel | None, new: NewPool) -> None:
    tape = options if isinstance(options, TapeOptions) else TapeOptions()
    library = TapeLibrary.create(
        Path(home.library or home.directory / "library"), tape.settings(), tape.barcodes
    )
    create_tape_pool(home.directory, library, **new.settings())


def _open_tape(home: PoolHome, passphrase: str | None) -> Pool:
    return open_tape_pool(home.directory, home.tape_library(), passphrase)


def _scan_tape(home: PoolHome, passphrase: str | None, image_dirs: list[Path]) -> HomeScan:
    library = home.tape_library()
    recreated = recover_tape_home(home.directory, library)
    pool = open_tape_pool(home.directory, library, passphrase)
    found = scan_library(pool)
    return HomeScan(recreated, found, pool, f"{found.media} cartridge(s)")


def _size_option(values: Mapping[str, Any], option: str) -> int:
    flag = "--" + option.replace("_", "-")
    try:
        return parse_size(values[option], flag)
    except ValueError as error:
        raise PoolOptionError(flag, str(error)) from None


def _tape_cli(values: Mapping[str, Any]) -> TapeOptions:
    fields: dict[str, object] = {
        "capacity_bytes": _size_option(values, "cartridge_capacity"),
        "block_size": _size_option(values, "block_size"),
    }
    if values["cartridge"]:
        fields["barcodes"] = values["cartridge"]
    if values["drive"]:
        if not values["cartridge"]:
            raise PoolOptionError("--cartridge", "name the cartridge loaded in each drive")
        fields["drives"] = values["drive"]
    return TapeOptions.model_validate(fields)


def _create_optical(home: PoolHome, options: BaseModel | None, new: NewPool) -> None:
    optical = options if isinstance(options, OpticalOptions) else OpticalOptions()
    create_optical_pool(home.directory, optical.settings(home.name, home.directory), **new.settings())


def _open_optical(home: PoolHome, passphrase: str | None) -> Pool:
    return open_optical_pool(home.directory, passphrase, name=home.name)


def _scan_optical(home: PoolHome, passphrase: str | None, image_dirs: list[Path]) -> HomeScan:
    recreated = recover_optical_home(home.directory, home.name, image_dirs)
    pool = open_optical_pool(home.directory, passphrase, image_dirs=image_dirs, name=home.name)
    return HomeScan(recreated, scan_discs(pool), pool, "the disc images")


def _optical_cli(values: Mapping[str, Any]) -> OpticalOptions:
    try:
        disc_bytes = parse_disc_size(values["disc_size"])
    except ValueError as error:
        raise PoolOptionError("--disc-size", str(error)) from None
    return OpticalOptions(
        disc_bytes=disc_bytes,
        output_dir=values["output_dir"],
        burn_command=values["burn_command"],
        max_discs=values["max_discs"],
    )


_S3_CLI = {
    "bucket": "bucket",
    "prefix": "prefix",
    "endpoint": "endpoint_url",
    "region": "region",
    "addressing": "addressing",
    "access_key_id": "access_key_id",
    "secret_access_key": "secret_access_key",
    "verify_tls": "verify_tls",
    "ca_bundle": "ca_bundle",
    "conditional_writes": "conditional_writes",
    "object_lock": "object_lock_mode",
    "retention_days": "retention_days",
}


def _object_cli(values: Mapping[str, Any]) -> S3Settings | None:
    if not values["bucket"]:
        return None  # create_registered_pool says what is missing
    try:
        return S3Settings.model_validate({setting: values[option] for option, setting in _S3_CLI.items()})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PoolError(f"S3 setting {where or 'error'}: {first['msg']}") from None


# -- the registry ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PoolKindSpec:
    """One kind of pool. `storage` is "directory" (a path on the backup host) or "s3"; a kind
    with a `fixed_format` always writes it, the others take `--format` (dedup by default)."""

    name: PoolKindName
    summary: str
    storage: Literal["directory", "s3"] = "directory"
    fixed_format: PoolFormatName | None = None
    needs_backup_hosts: bool = False
    has_library: bool = False
    # `pool create` options that belong to this kind (the CLI's own names), and what makes
    # this kind's options (TapeOptions, OpticalOptions, S3Settings) from their values.
    cli_options: tuple[str, ...] = ()
    options_from_cli: Callable[[Mapping[str, Any]], BaseModel | None] = field(default=lambda values: None)
    create: Callable[[PoolHome, BaseModel | None, NewPool], None] = _create_in_store
    open: Callable[[PoolHome, str | None], Pool] = _open_in_store
    media: Callable[[PoolHome], MediaUsage | None] = field(default=lambda home: None)
    scan: Callable[[PoolHome, str | None, list[Path]], HomeScan] | None = None

    def format_of(self, chosen: PoolFormatName | None) -> PoolFormatName:
        return self.fixed_format or chosen or "dedup"

    def library_in(self, location: str) -> str | None:
        return str(Path(location) / "library") if self.has_library else None


POOL_KINDS: dict[str, PoolKindSpec] = {
    spec.name: spec
    for spec in (
        PoolKindSpec("dedup", "chunks shared across every backup (a local directory)", fixed_format="dedup"),
        PoolKindSpec(
            "standard", "one pack per disk and backup set (a local directory)", fixed_format="standard"
        ),
        PoolKindSpec(
            "object",
            "an S3 bucket (dedup or standard format)",
            storage="s3",
            cli_options=tuple(_S3_CLI),
            options_from_cli=_object_cli,
        ),
        PoolKindSpec(
            "lanfree",
            "storage attached to certain backup hosts (dedup or standard format)",
            needs_backup_hosts=True,
            cli_options=("backup_host",),
        ),
        PoolKindSpec(
            "tape",
            "cartridges in an emulated library or real Linux tape drives",
            fixed_format="standard",
            has_library=True,
            cli_options=("cartridge", "cartridge_capacity", "block_size", "drive"),
            options_from_cli=_tape_cli,
            create=_create_tape,
            open=_open_tape,
            media=lambda home: tape_media(home.tape_library(), home.directory),
            scan=_scan_tape,
        ),
        PoolKindSpec(
            "optical",
            "discs written as ISO images (and burnt by a command)",
            fixed_format="standard",
            cli_options=("disc_size", "output_dir", "burn_command", "max_discs"),
            options_from_cli=_optical_cli,
            create=_create_optical,
            open=_open_optical,
            media=lambda home: optical_media(DiscSet(home.directory)),
            scan=_scan_optical,
        ),
    )
}
assert set(POOL_KINDS) == set(get_args(PoolKindName)), "every kind name is registered"


def pool_kind(name: str) -> PoolKindSpec:
    """The kind named `name`, or an error listing the kinds there are."""
    try:
        return POOL_KINDS[name]
    except KeyError:
        raise PoolError(
            f"Pool kind '{name}' is not available in this version; use one of: {', '.join(POOL_KINDS)}."
        ) from None
