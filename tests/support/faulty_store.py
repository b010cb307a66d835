"""A fault-injecting blob store (kopia's fault-injecting storage, in small): a real local
directory whose writes fail on demand, midway through a blob."""

from __future__ import annotations

import errno
import os
import threading
from typing import NoReturn

from bingobackup.storage.base import Buffer
from bingobackup.storage.localdir import DIRECT_IO_ALIGNMENT, LocalDirBlobStore


class FaultyBlobStore(LocalDirBlobStore):
    """Writes the first half of a blob's first part, then fails with `fail_errno` while armed;
    fails fsync with `sync_errno` while that is armed."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fail_errno: int | None = None
        self.sync_errno: int | None = None
        self.failures = 0
        self._lock = threading.Lock()

    def fail_with(self, code: int | None = errno.EIO) -> None:
        self.fail_errno = code

    def fail_sync_with(self, code: int | None = errno.EIO) -> None:
        """fsync fails while armed (the data was written; storage could not make it durable)."""
        self.sync_errno = code

    def _sync_file(self, fd: int) -> None:
        code = self.sync_errno
        if code is not None:
            with self._lock:
                self.failures += 1
            raise OSError(code, os.strerror(code))
        super()._sync_file(fd)

    def _write_all(self, fd: int, parts: tuple[Buffer, ...]) -> None:
        code = self.fail_errno
        if code is None:
            super()._write_all(fd, parts)
            return
        with self._lock:
            self.failures += 1
        fail_midway(fd, parts, code)


def fail_midway(fd: int, parts: tuple[Buffer, ...], code: int) -> NoReturn:
    """Writes half of the blob's first part, then fails with `code`, as a dropped link does."""
    first = memoryview(parts[0]).cast("B")
    # Half of it, in whole blocks when there are any: a direct I/O write must stay aligned.
    half = len(first) // 2
    os.write(fd, first[: half - half % DIRECT_IO_ALIGNMENT or max(1, half)])
    raise OSError(code, os.strerror(code))
