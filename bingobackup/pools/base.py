"""The blob layer every pool kind is built on (restic's backend, kopia's blob storage).

A blob store keeps named byte strings ("blobs") under '/'-separated keys such as
`chunks/ab/ab12…` or `packs/SET/VOLUME.pack`. Its rules, which the conformance suite in
tests/pools checks for every implementation:

1. `put(key, data)` is atomic: afterwards the blob is complete and durable (local
   filesystems: write a temp file, fsync, rename, fsync the directory); if it fails midway
   no reader ever sees a partial blob under `key` and no temp file is listed.
2. `put` is idempotent: putting the same bytes under an existing key succeeds and leaves one
   blob. (Content-addressed keys make "same key" mean "same bytes".)
3. `get(key, offset, length)` returns exactly the stored bytes (a range when asked), or raises
   BlobNotFoundError. It does not interpret them; chunk verification is the content layer's.
4. `list(prefix)` yields every complete blob whose key starts with `prefix`, with its size,
   never a temp file; order is unspecified.
5. `delete(key)` removes a blob; deleting a missing key raises BlobNotFoundError.
6. `stat(key)` gives the size of one blob, or raises BlobNotFoundError.
7. Running out of space (ENOSPC, a quota) raises PoolFullError naming the pool and the bytes
   needed, after cleaning up; any other OS error propagates as OSError.
8. `open_append(key)` streams one large blob (a standard pool's pack) that becomes visible
   under `key` only on `commit()`; `abort()` removes every trace. Object stores map it to a
   multipart upload, tape to one file on the tape.

All methods are thread-safe. Keys are relative, with no empty, '.' or '..' component.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

Buffer = bytes | bytearray | memoryview
BlobData = Buffer | Sequence[Buffer]


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int


def as_parts(data: BlobData) -> tuple[Buffer, ...]:
    """One blob's bytes as a tuple of buffers (written with one writev, never joined)."""
    if isinstance(data, bytes | bytearray | memoryview):
        return (data,)
    return tuple(data)


def check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") or p.startswith(".tmp-") for p in parts):
        raise ValueError(f"invalid blob key {key!r}: use relative '/'-separated names without '.' or '..'")
    return key


class BlobWriter(ABC):
    """A blob being streamed (rule 8). Not thread-safe: callers serialise `write`."""

    @property
    @abstractmethod
    def size(self) -> int:
        """Bytes written so far: the offset the next write lands at."""

    @abstractmethod
    def write(self, data: BlobData) -> int:
        """Appends `data`; returns the offset it starts at."""

    @abstractmethod
    def commit(self) -> None:
        """Makes the blob durable and visible under its key."""

    @abstractmethod
    def abort(self) -> None:
        """Discards everything written; safe to call twice or after a failed write."""


class BlobStore(ABC):
    """Where a pool keeps its bytes. See the module docstring for the rules."""

    name: str

    @abstractmethod
    def put(self, key: str, data: BlobData) -> None: ...

    @abstractmethod
    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def stat(self, key: str) -> BlobInfo: ...

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[BlobInfo]: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def open_append(self, key: str) -> BlobWriter: ...
