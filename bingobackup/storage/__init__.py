"""The blob layer: where a pool's bytes are kept. `base.BlobStore` and its written rules,
a local directory (`localdir`), S3 (`s3store` and `s3writer`, sharing `_s3common`), and
`testing/`: the conformance suite every store passes and a fault wrapper around any store."""

from __future__ import annotations

from bingobackup.storage.base import BlobInfo, BlobStore, BlobWriter
from bingobackup.storage.errors import (
    BlobNotFoundError,
    PoolError,
    PoolFullError,
    PoolNotFoundError,
    StoreIOError,
    is_permanent_error,
)
from bingobackup.storage.localdir import LocalDirBlobStore

__all__ = [
    "BlobInfo",
    "BlobNotFoundError",
    "BlobStore",
    "BlobWriter",
    "LocalDirBlobStore",
    "PoolError",
    "PoolFullError",
    "PoolNotFoundError",
    "StoreIOError",
    "is_permanent_error",
]
