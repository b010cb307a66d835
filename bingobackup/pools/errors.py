"""Errors a pool raises; each names the pool and says what to do next."""

from __future__ import annotations

from bingobackup.errors import BingoBackupError


class PoolError(BingoBackupError):
    pass


class PoolFullError(PoolError):
    def __init__(self, pool: str, needed_bytes: int, detail: str = "") -> None:
        self.pool = pool
        self.needed_bytes = needed_bytes
        why = f" ({detail})" if detail else ""
        super().__init__(
            f"pool {pool} is full{why}: could not store {needed_bytes} more bytes. Nothing partial was "
            "left behind; free space on the pool's storage (delete old backup sets, or grow the "
            "filesystem or quota) and run the backup again"
        )


class BlobNotFoundError(PoolError):
    def __init__(self, pool: str, key: str) -> None:
        self.pool = pool
        self.key = key
        super().__init__(
            f"pool {pool} has no {key}; it was deleted or never written. Check that the backup set "
            "still exists in this pool (bingobackup catalog query) or restore from another copy"
        )


class PoolNotFoundError(PoolError):
    pass


class PoolExistsError(PoolError):
    pass
