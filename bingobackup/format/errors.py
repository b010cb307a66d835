"""Errors of the on-pool format: damaged chunks, unknown versions, keys that do not fit.

Every message names the pool or chunk concerned and says what to do next; none carries a
passphrase or key.
"""

from __future__ import annotations

from bingobackup.errors import BingoBackupError


class FormatError(BingoBackupError):
    """Something on the pool is not what this version of bingobackup can read."""


class UnsupportedFormatError(FormatError):
    """The pool (or a chunk in it) uses a format version or identifier this code does not know."""


class CorruptChunkError(FormatError):
    """A stored chunk fails verification: bad header, failed authentication, or wrong digest."""

    def __init__(self, digest: str, reason: str, location: str = "") -> None:
        self.digest = digest
        self.reason = reason
        self.location = location
        where = f" at {location}" if location else ""
        super().__init__(
            f"chunk {digest}{where} is damaged: {reason}. The backups that use it cannot be restored "
            "from this copy; check the pool's storage for errors and restore from another copy or "
            "run a new full backup"
        )


class WrongPassphraseError(FormatError):
    def __init__(self, pool: str) -> None:
        self.pool = pool
        super().__init__(
            f"the passphrase does not open pool {pool}; nothing was read or written. "
            "Check the passphrase (it is case-sensitive) and try again; if it is right, the key "
            "wrapped in the pool's config.json is damaged: restore that file from a copy"
        )


class PassphraseRequiredError(FormatError):
    def __init__(self, pool: str) -> None:
        self.pool = pool
        super().__init__(
            f"pool {pool} is encrypted and no passphrase was given; nothing was read or written. "
            "Pass the pool's passphrase"
        )


class ManifestError(FormatError):
    """A disk's manifest cannot be trusted (its seal fails, it is missing one, or it sits under
    another disk's name), or an index of it (the catalog) disagrees with it. Names the disk,
    and the disk offset where one is concerned."""

    def __init__(self, message: str, set_id: str, volume_id: str, offset: int | None = None) -> None:
        self.set_id = set_id
        self.volume_id = volume_id
        self.offset = offset
        super().__init__(message)
