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

    def __init__(self, digest: str, reason: str, location: str = "", *, key_refused: bool = False) -> None:
        self.digest = digest
        self.reason = reason
        self.location = location
        # The envelope did not authenticate under the pool's key (or is encrypted where the pool
        # is not): damaged, or sealed under another key. A digest mismatch after it did
        # authenticate means the key is the pool's (the chunk is in the wrong place).
        self.key_refused = key_refused
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
            "wrapped in the pool's config.json is damaged, or the file is another pool's (copied "
            "over this one): restore that file from a copy of this pool"
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


class ForeignConfigError(FormatError):
    """The pool's config.json holds a key that seals none of the pool's manifests: the file was
    replaced (another pool's, made with the same passphrase) or the manifests all damaged."""

    def __init__(self, pool: str, checked: list[str], config_names: str) -> None:
        self.pool = pool
        self.checked = checked
        names = f" (which names pool {config_names})" if config_names != pool else ""
        super().__init__(
            f"pool {pool}: config.json{names} does not fit the backups stored in the pool: the "
            f"manifests checked ({', '.join(checked)}) are not sealed, or their chunks not encrypted, "
            "under the key and pool id config.json holds, so config.json was most likely replaced by "
            "another pool's (one made with the same passphrase). Nothing was read or written; restore "
            "config.json from a copy of this pool (a tape or optical pool's with `bingobackup pool scan`), "
            "check who can write to the pool's storage, and run `bingobackup verify` if the file "
            "turns out to be this pool's own"
        )
