"""What a pool holds: backup sets, logical vs stored bytes, free capacity (`pool stats`).

Read from the blob store alone (manifests are not encrypted), so no passphrase is needed.
"""

from __future__ import annotations

import shutil

from pydantic import BaseModel

from bingobackup.format.manifest import DiskManifest
from bingobackup.pools.base import BlobStore
from bingobackup.pools.localdir import LocalDirBlobStore
from bingobackup.pools.pool import MANIFESTS


class PoolStats(BaseModel):
    sets: int
    disks: int
    logical_bytes: int  # what the backed-up disks hold (holes and zero chunks excluded)
    stored_bytes: int  # every blob the pool keeps: chunks or packs, manifests, config
    free_bytes: int | None  # None: the storage reports no limit (object storage)

    @property
    def reduction(self) -> float | None:
        """logical / stored: how much dedup and compression saved (None for an empty pool)."""
        return self.logical_bytes / self.stored_bytes if self.stored_bytes and self.logical_bytes else None


def pool_stats(store: BlobStore) -> PoolStats:
    sets: set[str] = set()
    disks = logical = stored = 0
    for info in store.list(""):
        stored += info.size
        if info.key.startswith(f"{MANIFESTS}/") and info.key.endswith(".json"):
            manifest = DiskManifest.model_validate_json(store.get(info.key))
            sets.add(manifest.set_id)
            disks += 1
            logical += manifest.data_bytes
    free = shutil.disk_usage(store.root).free if isinstance(store, LocalDirBlobStore) else None
    return PoolStats(sets=len(sets), disks=disks, logical_bytes=logical, stored_bytes=stored, free_bytes=free)
