"""Fault injection for the blob layer (kopia's blobtesting/faulty.go, in small).

`FaultyStore` wraps any blob store and makes chosen operations fail, the next n calls or
every call, before they reach the store: the pool and the jobs above see the failure exactly
as the store would raise it. `FaultyBlobStore` is a local directory whose writes fail midway
through a blob (half of it written, then the error), which only a store's own write path can
do: it proves the store leaves nothing partial (the conformance suite's fault cases)."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Literal, NoReturn

from bingobackup.storage.base import BlobData, BlobInfo, BlobStore, BlobWriter, Buffer
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


Operation = Literal["put", "get", "exists", "stat", "list", "delete", "open_append", "put_soon", "flush"]


class FaultyStore(BlobStore):
    """`inner` with faults on demand: `fail("put", OSError(errno.EIO, "link down"), times=2)`
    makes the next two puts raise that error without reaching `inner`; `times=None` fails
    every call until `heal()`. Everything else is `inner`'s (name, retention, writers)."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner
        self.name = inner.name
        self.failures = 0
        self._faults: dict[str, tuple[BaseException, int | None]] = {}
        self._lock = threading.Lock()

    def fail(self, operation: Operation, error: BaseException, times: int | None = 1) -> None:
        with self._lock:
            self._faults[operation] = (error, times)

    def heal(self) -> None:
        with self._lock:
            self._faults.clear()

    def _check(self, operation: Operation) -> None:
        with self._lock:
            fault = self._faults.get(operation)
            if fault is None:
                return
            error, times = fault
            if times is not None:
                if times <= 1:
                    del self._faults[operation]
                else:
                    self._faults[operation] = (error, times - 1)
            self.failures += 1
        raise error

    @property
    def keeps_every_blob(self) -> bool:
        return self.inner.keeps_every_blob

    def retained_until(self, key: str) -> datetime | None:
        return self.inner.retained_until(key)

    @property
    def replaces_blobs(self) -> bool:
        return self.inner.replaces_blobs

    def put(self, key: str, data: BlobData) -> None:
        self._check("put")
        self.inner.put(key, data)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        self._check("get")
        return self.inner.get(key, offset, length)

    def exists(self, key: str) -> bool:
        self._check("exists")
        return self.inner.exists(key)

    def stat(self, key: str) -> BlobInfo:
        self._check("stat")
        return self.inner.stat(key)

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        self._check("list")
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self._check("delete")
        self.inner.delete(key)

    def sync_deletions(self) -> None:
        self.inner.sync_deletions()

    def open_append(self, key: str) -> BlobWriter:
        self._check("open_append")
        return self.inner.open_append(key)

    def put_soon(self, key: str, data: BlobData, release: Callable[[], None] | None = None) -> None:
        self._check("put_soon")
        self.inner.put_soon(key, data, release)

    def flush(self) -> None:
        self._check("flush")
        self.inner.flush()
