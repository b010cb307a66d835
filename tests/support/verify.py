"""Pools with real backup sets committed to their catalog, and a way to damage one chunk."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from bingobackup.format.manifest import ChunkRef, DiskManifest
from bingobackup.mover.backup import backup_disk
from bingobackup.pools import Pool
from catalog import BackupSetRecord, CatalogWriter, DiskBackupRecord, VmBackupRecord

CHUNK = 64 << 10
T0 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)


@dataclass
class Backups:
    """A pool, its catalog root and the sets backed up into it."""

    pool: Pool
    catalog_root: tuple[str, pafs.FileSystem | None]
    sources: Path  # where the disk images backed up are written
    manifests: dict[tuple[str, str], DiskManifest] = field(default_factory=dict)  # (set, volume) → manifest
    vm_of_volume: dict[str, str] = field(default_factory=dict)

    def back_up(
        self, set_id: str, vm: str, data: bytes, *, job: str = "nightly", day: int = 0
    ) -> DiskManifest:
        """One set holding VM `vm` with one disk whose content is `data`."""
        volume = f"vol-{vm}-root"
        self.sources.mkdir(parents=True, exist_ok=True)
        source = self.sources / f"{set_id}-{vm}.raw"
        source.write_bytes(data)
        result = backup_disk(
            source,
            self.pool.open_disk_writer(set_id, volume, len(data)),
            size_bytes=len(data),
            chunk_size=CHUNK,
        )
        started = T0 + timedelta(days=day)
        vm_id = f"i-{vm.upper():0<8}"[:10]
        writer = CatalogWriter(*self.catalog_root)
        writer.write_backup_set(
            BackupSetRecord(
                set_id=set_id,
                job_name=job,
                pool=self.pool.name,
                cloud="demo",
                started_at=started,
                finished_at=started + timedelta(minutes=5),
            ),
            [VmBackupRecord(set_id=set_id, vm_id=vm_id, vm_name=vm)],
            [
                DiskBackupRecord(
                    set_id=set_id,
                    vm_id=vm_id,
                    volume_id=volume,
                    name=f"{vm}-root",
                    size_bytes=len(data),
                    is_root=True,
                    device_name="/dev/vda",
                )
            ],
            [result.manifest],
        )
        self.manifests[(set_id, volume)] = result.manifest
        self.vm_of_volume[volume] = vm
        return result.manifest


def chunk_at(manifest: DiskManifest, offset: int) -> ChunkRef:
    return next(ref for ref in manifest.chunks if ref.offset == offset)


def flip_byte(pool: Pool, ref: ChunkRef) -> None:
    """One byte of the chunk's stored envelope flipped in place, in its pack (past the header)."""
    key, _, start = ref.location.rpartition("@")
    position = int(start) + ref.stored_size // 2
    store: Any = pool.store
    if hasattr(store, "root"):  # a local directory: the pack file itself
        path = Path(store.root) / key
        with open(path, "r+b") as pack:
            pack.seek(position)
            byte = pack.read(1)
            pack.seek(position)
            pack.write(bytes([byte[0] ^ 0x40]))
        return
    # Object storage: the object replaced behind the pool's back (a bit rot the store let through).
    body = bytearray(store.get(key))
    body[position] ^= 0x40
    store.client.put_object(Bucket=store.settings.bucket, Key=store._object(key), Body=bytes(body))


def random_data(chunks: int) -> bytes:
    return os.urandom(chunks * CHUNK)


def flip_tape_byte(pool: Any, ref: ChunkRef) -> None:
    """One byte of the chunk flipped on its emulated cartridge (blocks framed by 5-byte headers)."""
    _, barcode, file_number, start = ref.location.split(":")
    cartridge = pool.library.cartridge(barcode)
    assert cartridge.files > int(file_number)  # the cartridge's file index is learnt
    block = cartridge.block_size
    payload = int(start) + ref.stored_size // 2
    position = cartridge._starts[int(file_number)] + (payload // block) * (5 + block) + 5 + payload % block
    with open(cartridge.path, "r+b") as tape:
        tape.seek(position)
        byte = tape.read(1)
        tape.seek(position)
        tape.write(bytes([byte[0] ^ 0x40]))


def flip_optical_byte(pool: Any, ref: ChunkRef) -> None:
    """One byte of the chunk flipped in its closed disc's ISO image (where the reader finds it)."""
    from bingobackup.media.discs import file_name

    _, label, number, start = ref.location.split(":")
    image = pool.discs.image_of(label)
    assert image is not None  # the disc was closed: its image is what readers read
    position = pool.discs._extent(image, file_name(int(number))) + int(start) + ref.stored_size // 2
    with open(image, "r+b") as disc:
        disc.seek(position)
        byte = disc.read(1)
        disc.seek(position)
        disc.write(bytes([byte[0] ^ 0x40]))
