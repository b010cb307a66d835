"""Errors the data mover raises: each says what went wrong, where on the disk, and what to do."""

from __future__ import annotations

from bingobackup.errors import BingoBackupError


class MoverError(BingoBackupError):
    """Base of every data-mover error."""


class DeviceTimeoutError(MoverError):
    """An attached disk did not appear (or did not go away) in time."""


class BackupCancelledError(MoverError):
    """The backup of a disk was cancelled before it finished; nothing was committed."""


class DiskReadError(MoverError):
    """Reading, hashing or storing a chunk of the source disk failed at a known offset."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class RestoreChunkError(MoverError):
    """A chunk could not be read back (missing or corrupt) while restoring a disk."""

    def __init__(self, message: str, offset: int, digest: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.digest = digest
