"""Errors a pool raises; each names the pool and says what to do next."""

from __future__ import annotations

from bingobackup.errors import BingoBackupError


class PoolError(BingoBackupError):
    pass


class PoolFullError(PoolError):
    GENERIC_ADVICE = (
        "free space on the pool's storage (delete old backup sets, or grow the filesystem or quota) "
        "and run the backup again"
    )

    def __init__(self, pool: str, needed_bytes: int, detail: str = "", advice: str = "") -> None:
        """`advice` replaces the generic free-space advice when the medium needs something else
        (tape: load cartridges; optical: allow more discs)."""
        self.pool = pool
        self.needed_bytes = needed_bytes
        why = f" ({detail})" if detail else ""
        super().__init__(
            f"pool {pool} is full{why}: could not store {needed_bytes} more bytes. Nothing partial was "
            f"left behind; {advice or self.GENERIC_ADVICE}"
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


class StoreIOError(PoolError, OSError):
    """A remote store (S3) failed after its retries: an OSError like a local disk's EIO, so
    the callers that handle I/O errors handle it too, with a message saying what to check."""

    def __init__(self, message: str) -> None:
        PoolError.__init__(self, message)
        self.errno = 5  # EIO: what a local filesystem would have said
        self.strerror = self.message = message

    def __str__(self) -> str:
        return self.message
