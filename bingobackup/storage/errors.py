"""Errors a pool raises; each names the pool and says what to do next."""

from __future__ import annotations

import errno

from bingobackup.errors import BingoBackupError

# errnos a lost or flaky link to a pool's storage gives (NFS, CIFS, iSCSI, sockets); a full
# pool, a missing permission or a bad path are not link problems and fail at once.
LINK_ERRNOS = frozenset(
    {
        errno.EIO,
        errno.ETIMEDOUT,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.ECONNREFUSED,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.ENETRESET,
        errno.EHOSTDOWN,
        errno.EHOSTUNREACH,
        errno.ENOTCONN,
        errno.EPIPE,
        errno.ESTALE,
        errno.EAGAIN,
    }
)


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


def is_permanent_error(error: BaseException) -> bool:
    """Rule 10 of the blob store (storage/base.py): False when retrying may help, because the
    link to the storage or the service may come back (StoreIOError, a lost connection, a
    timeout, an OSError with a link errno); True for every other failure: a full pool, a
    missing blob, a refused key, a bug."""
    if isinstance(error, StoreIOError | ConnectionError | TimeoutError):
        return False
    if isinstance(error, PoolError):
        return True  # pool full, blob missing, …: retrying does not help
    return not (isinstance(error, OSError) and error.errno in LINK_ERRNOS)
