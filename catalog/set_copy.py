"""One backup set's catalog rows as bytes, kept on a media pool's cartridges or discs.

The register step hands `set_copy_bytes(...)` to the pool (`keep_catalog_copy`), which writes
it sealed like a chunk as its own file on the medium. After the pool home is lost,
`pool scan` reads the copies back and `restore_set_copies` commits every set the catalog
lacks through the ordinary `CatalogWriter` (the chunk rows come from the manifests the scan
rebuilt from the stream trailers), so `sets list`, `export-disk` and restores find them again.

The bytes are UTF-8 JSON: `{"format": "bingobackup-set-copy", "schema_version": N,
"backup_set": {...}, "vm_backups": [...], "disk_backups": [...]}`, the row models of
`catalog.schema`. Readers ignore fields they do not know (rows of newer writers) and give
missing fields their defaults (rows of older writers), as the Parquet readers do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from bingobackup.errors import BingoBackupError
from bingobackup.format.manifest import DiskManifest
from catalog.location import CatalogError
from catalog.schema import SCHEMA_VERSION, BackupSetRecord, DiskBackupRecord, VmBackupRecord
from catalog.writer import CatalogWriter

SET_COPY_FORMAT: Literal["bingobackup-set-copy"] = "bingobackup-set-copy"


class SetCopy(BaseModel):
    """The rows of one committed backup set (its chunk rows are the disks' manifests)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    format: Literal["bingobackup-set-copy"] = SET_COPY_FORMAT
    schema_version: int = SCHEMA_VERSION
    backup_set: BackupSetRecord
    vm_backups: tuple[VmBackupRecord, ...] = ()
    disk_backups: tuple[DiskBackupRecord, ...] = ()


def set_copy_bytes(
    set_record: BackupSetRecord,
    vm_records: Sequence[VmBackupRecord],
    disk_records: Sequence[DiskBackupRecord],
) -> bytes:
    copy = SetCopy(backup_set=set_record, vm_backups=tuple(vm_records), disk_backups=tuple(disk_records))
    return copy.model_dump_json().encode()


def read_set_copy(payload: bytes) -> SetCopy:
    try:
        return SetCopy.model_validate_json(payload)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        raise CatalogError(
            f"a catalog copy on the media is not readable ({where}: {first['msg']}); the set it "
            "belongs to is skipped. Its disks can still be exported with the pool's manifests."
        ) from None


@dataclass
class RestoredSets:
    """What `restore_set_copies` did."""

    sets: list[str] = field(default_factory=list)  # committed again, in set id order
    vms: int = 0
    disks: int = 0
    already_there: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "set X: why", nothing of it written


def committed(writer: CatalogWriter, set_id: str) -> bool:
    """Whether the catalog already has a commit record for `set_id`."""
    names = writer.location.list_files("backup_sets", f"{set_id}.")
    return any(path.rsplit("/", 1)[-1].rsplit(".", 2)[0] == set_id for path in names)


def restore_set_copies(
    writer: CatalogWriter,
    copies: Iterable[bytes],
    load_manifest: Callable[[str, str], DiskManifest],
) -> RestoredSets:
    """Commits every set of `copies` the catalog lacks; `load_manifest(set_id, volume_id)` gives
    each disk's manifest (BingoBackupError when the pool lacks it: the set is skipped)."""
    done = RestoredSets()
    readable: list[SetCopy] = []
    for payload in copies:
        try:
            readable.append(read_set_copy(payload))
        except CatalogError as error:
            done.skipped.append(str(error))
    for copy in sorted(readable, key=lambda c: c.backup_set.set_id):
        set_id = copy.backup_set.set_id
        if committed(writer, set_id):
            done.already_there.append(set_id)
            continue
        try:
            manifests = [load_manifest(set_id, disk.volume_id) for disk in copy.disk_backups]
        except BingoBackupError as error:
            done.skipped.append(f"set {set_id}: {error}")
            continue
        writer.write_backup_set(copy.backup_set, copy.vm_backups, copy.disk_backups, manifests)
        done.sets.append(set_id)
        done.vms += len(copy.vm_backups)
        done.disks += len(copy.disk_backups)
    return done
