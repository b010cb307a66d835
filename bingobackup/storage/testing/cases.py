"""A blob store under test with its handles (kopia's blobtesting): make writes fail
(`fail_with`), count the failures, list leftovers a failed write might leave, and read or
damage stored bytes behind the store's back (bit rot on the medium). `LocalCase` is the local
directory's; each other store's tests give theirs (tests/support/backends.py: S3 over moto)."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from pathlib import Path

from bingobackup.storage.base import BlobStore
from bingobackup.storage.localdir import TEMP_PREFIX, LocalDirBlobStore
from bingobackup.storage.testing.faulty import FaultyBlobStore


def temp_files(root: Path) -> list[Path]:
    """A local store's temp files under `root` (what a failed write must not leave)."""
    return list(root.rglob(f"{TEMP_PREFIX}*"))


class StoreCase(ABC):
    store: BlobStore

    @abstractmethod
    def fail_with(self, code: int | None) -> None:
        """Arm (errno) or disarm (None) a fault on every write from now on."""

    @property
    @abstractmethod
    def failures(self) -> int: ...

    @abstractmethod
    def leftovers(self) -> list[str]:
        """Traces of unfinished writes (temp files, incomplete multipart uploads)."""

    @abstractmethod
    def fresh_store(self) -> BlobStore:
        """A new store object over the same blobs (what another process would open)."""

    @abstractmethod
    def read_raw(self, key: str) -> bytes: ...

    @abstractmethod
    def write_raw(self, key: str, data: bytes) -> None:
        """Replaces a blob's bytes behind the store's back (the medium rotted)."""

    def snapshot(self) -> dict[str, str]:
        return {i.key: hashlib.sha256(self.read_raw(i.key)).hexdigest() for i in self.store.list("")}

    def close(self) -> None:  # noqa: B027 - only remote stores have something to close
        pass


class LocalCase(StoreCase):
    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.store = self.faulty = FaultyBlobStore(root, name)

    def fail_with(self, code: int | None) -> None:
        self.faulty.fail_with(code)

    @property
    def failures(self) -> int:
        return self.faulty.failures

    def leftovers(self) -> list[str]:
        return [str(p) for p in temp_files(self.root)]

    def fresh_store(self) -> BlobStore:
        return LocalDirBlobStore(self.root, self.store.name)

    def read_raw(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def write_raw(self, key: str, data: bytes) -> None:
        (self.root / key).write_bytes(data)
