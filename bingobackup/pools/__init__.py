"""Pools, the content layer: where backups live, in a dedup or standard format, on blob stores
(bingobackup/storage/) or media (bingobackup/media/); `kinds` is the registry of pool kinds.
The blob layer's names are re-exported here for the pool's callers."""

from __future__ import annotations

from bingobackup.pools.open import (
    change_passphrase,
    create_pool,
    create_pool_in,
    open_pool,
    open_pool_in,
    upgrade_pool,
)
from bingobackup.pools.pool import Pool
from bingobackup.pools.writer import DedupMode, DiskWriter, WriterStats
from bingobackup.storage.base import BlobInfo, BlobStore, BlobWriter
from bingobackup.storage.errors import (
    BlobNotFoundError,
    PoolError,
    PoolExistsError,
    PoolFullError,
    PoolNotFoundError,
)
from bingobackup.storage.localdir import LocalDirBlobStore

__all__ = [
    "BlobInfo",
    "BlobNotFoundError",
    "BlobStore",
    "BlobWriter",
    "DedupMode",
    "DiskWriter",
    "LocalDirBlobStore",
    "Pool",
    "PoolError",
    "PoolExistsError",
    "PoolFullError",
    "PoolNotFoundError",
    "WriterStats",
    "change_passphrase",
    "create_pool",
    "create_pool_in",
    "open_pool",
    "open_pool_in",
    "upgrade_pool",
]
