"""What a pool holds: backup sets, logical vs stored bytes, free capacity (`pool stats`).

Read from the blob store alone (manifests are not encrypted), so no passphrase is needed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import BaseModel

from bingobackup.format.constants import MANIFESTS
from bingobackup.format.manifest import DiskManifest
from bingobackup.media.discs import STAGING, DiscSet
from bingobackup.media.tapelib import TapeLibrary
from bingobackup.storage.base import BlobStore
from bingobackup.storage.localdir import LocalDirBlobStore


class MediaUsage(BaseModel):
    """Removable media of a tape or optical pool: the bytes on them and the room left."""

    kind: str  # "cartridge" | "disc"
    count: int
    with_room: int  # media that can still take data (blank or partly written)
    stored_bytes: int
    free_bytes: int | None  # None: no limit on how many media the pool may use
    home_prefixes: list[str] = []  # keys of the pool home that are media files: counted once, here


class PoolStats(BaseModel):
    sets: int
    disks: int
    logical_bytes: int  # what the backed-up disks hold (holes and zero chunks excluded)
    stored_bytes: int  # every blob the pool keeps: chunks or packs, manifests, config
    free_bytes: int | None  # None: the storage reports no limit (object storage, unlimited discs)
    media: MediaUsage | None = None  # tape cartridges / optical discs, counted in stored and free

    @property
    def reduction(self) -> float | None:
        """logical / stored: how much dedup and compression saved (None for an empty pool)."""
        return self.logical_bytes / self.stored_bytes if self.stored_bytes and self.logical_bytes else None


def pool_stats(store: BlobStore, media: MediaUsage | None = None) -> PoolStats:
    """`store` is the pool (or, for tape and optical, its home); `media` the cartridges or discs."""
    sets: set[str] = set()
    disks = logical = stored = 0
    skip = tuple(media.home_prefixes) if media else ()
    for info in store.list(""):
        if skip and info.key.startswith(skip):
            continue
        stored += info.size
        if info.key.startswith(f"{MANIFESTS}/") and info.key.endswith(".json"):
            manifest = DiskManifest.model_validate_json(store.get(info.key))
            sets.add(manifest.set_id)
            disks += 1
            logical += manifest.data_bytes
    free = shutil.disk_usage(store.root).free if isinstance(store, LocalDirBlobStore) else None
    if media is not None:
        stored += media.stored_bytes
        free = media.free_bytes
    return PoolStats(
        sets=len(sets), disks=disks, logical_bytes=logical, stored_bytes=stored, free_bytes=free, media=media
    )


def tape_media(library: TapeLibrary, home: Path) -> MediaUsage:
    cartridges = library.cartridges()
    block = library.settings.block_size
    return MediaUsage(
        kind="cartridge",
        count=len(cartridges),
        with_room=sum(1 for c in cartridges if c.free_blocks > 0),
        stored_bytes=sum(c.blocks_used for c in cartridges) * block,
        free_bytes=sum(c.free_blocks for c in cartridges) * block,
        home_prefixes=_under(library.root, home),
    )


def optical_media(discs: DiscSet) -> MediaUsage:
    closed = discs.closed()
    open_label = discs.open_disc()
    staged = sum(p.stat().st_size for p in discs.staged_files(open_label)) if open_label else 0
    disc_bytes, limit = discs.settings.disc_bytes, discs.settings.max_discs
    open_room = max(disc_bytes - discs.used_bytes(open_label), 0) if open_label else 0
    free = None
    if limit is not None:
        blank = max(limit - len(closed) - (1 if open_label else 0), 0)
        free = blank * disc_bytes + open_room
    return MediaUsage(
        kind="disc",
        count=len(closed) + (1 if open_label else 0),
        with_room=max(limit - len(closed), 0) if limit else (1 if open_label else 0),
        stored_bytes=sum(d.image_bytes for d in closed) + staged,
        free_bytes=free,
        home_prefixes=[f"{STAGING}/", *_under(discs.output, discs.home)],
    )


def _under(directory: Path, home: Path) -> list[str]:
    """The key prefix of `directory` when it lies inside the pool home."""
    try:
        return [f"{Path(directory).resolve().relative_to(Path(home).resolve()).as_posix()}/"]
    except ValueError:
        return []
