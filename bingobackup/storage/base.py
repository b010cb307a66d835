"""The blob layer every pool kind is built on (restic's backend, kopia's blob storage).

A blob store keeps named byte strings ("blobs") under '/'-separated keys such as
`chunks/ab/ab12…` or `packs/SET/VOLUME.pack`. Its rules, which the conformance suite in
bingobackup/storage/testing/conformance.py checks for every implementation:

1. `put(key, data)` is atomic: afterwards the blob is complete and durable (local
   filesystems: write a temp file, fsync, rename, fsync the directory); if it fails midway
   no reader ever sees a partial blob under `key` and no temp file is listed.
2. `put` is idempotent: putting the same bytes under an existing key succeeds and leaves one
   blob. Keys under `chunks/` are content-addressed: a blob there holds the same plaintext
   whatever its bytes (an encrypted chunk sealed twice differs only in its nonce), so a put
   that finds one there succeeds and keeps it. Elsewhere, a write-once store refuses other
   bytes under an existing key.
3. `get(key, offset, length)` returns exactly the stored bytes (a range when asked), or raises
   BlobNotFoundError. It does not interpret them; chunk verification is the content layer's.
4. `list(prefix)` yields every complete blob whose key starts with `prefix`, with its size,
   never a temp file; order is unspecified.
5. `delete(key)` removes a blob; deleting a missing key raises BlobNotFoundError. The removal
   may not survive a power loss until `sync_deletions()` returns (a local store fsyncs the
   directories it deleted from then, not once per blob); a caller that records a deletion
   elsewhere (a catalog tombstone) calls it first.
6. `stat(key)` gives the size of one blob, or raises BlobNotFoundError.
7. Running out of space (ENOSPC, a quota) raises PoolFullError naming the pool and the bytes
   needed, after cleaning up; any other OS error propagates as OSError.
8. `open_append(key)` streams one large blob (a standard pool's pack) that becomes visible
   under `key` only on `commit()`; `abort()` removes every trace. Object stores map it to a
   multipart upload, tape to one file on the tape.
9. `put_soon(key, data)` is `put` whose last steps may finish in the background: `data` is
   copied before it returns (the caller may drop it), the blob stays invisible (rule 1) until
   it is durable, and `flush()` returns only once every earlier `put_soon` is durable and
   visible. A blob that failed in the background is written again by the next `put_soon` or
   `flush()`, which raise if that fails too. Stores with nothing to overlap simply `put`.
   `put_soon(key, data, release=callback)` hands `data` over instead: the store may keep
   and write it as it is (no copy; a local store writes such a blob on its own threads,
   with direct I/O when the first buffer is page-aligned), the caller leaves it unchanged
   until the store calls `release()` (once the blob is durable, or at once when the store
   copied it), and the caller keeps it when `put_soon` raises. Dedup packs are handed over.
10. Every failure says whether retrying may help (restic's IsPermanentError): a store raises
   StoreIOError, or an OSError with an errno of LINK_ERRNOS, when the link or the service may
   come back (the caller may retry the same call, or rewind a writer and go on); any other
   PoolError (full, missing, refused, exists) is permanent. `is_permanent_error(error)` in
   storage/errors.py is the one place callers ask; no caller guesses from exception types.

All methods are thread-safe. Keys are relative, with no empty, '.' or '..' component.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bingobackup.format.constants import CHUNKS

Buffer = bytes | bytearray | memoryview


def is_content_addressed(key: str) -> bool:
    return key.startswith(f"{CHUNKS}/")


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


def frozen(parts: tuple[Buffer, ...]) -> tuple[bytes, ...]:
    """`parts` as immutable bytes: no copy for what already is bytes (sealed chunks are)."""
    return tuple(part if type(part) is bytes else bytes(part) for part in parts)


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

    def sync(self) -> None:  # noqa: B027 - stores without an acknowledgment point do nothing
        """Makes every byte written so far durable, still invisible until `commit`: what a
        resuming writer need no longer keep (the pool's acknowledgment)."""

    def rewind(self, size: int) -> int:
        """After a failed `write` (a lost link), drops the bytes after `size` — no less than
        what the last `sync` made durable — so writing can go on; returns where it goes on
        from, later than `size` where bytes already left for good (an uploaded part). Stores
        that cannot go back at all raise."""
        raise NotImplementedError(f"{type(self).__name__} cannot go back to byte {size} of its blob")


class BlobStore(ABC):
    """Where a pool keeps its bytes. See the module docstring for the rules."""

    name: str

    @property
    def keeps_every_blob(self) -> bool:
        """True where the storage refuses deletes (S3 Object Lock): nothing is deleted to tidy up."""
        return False

    def retained_until(self, key: str) -> datetime | None:
        """When a retention lock on `key` ends (S3 Object Lock), or None: deletable now."""
        return None

    @property
    def replaces_blobs(self) -> bool:
        """False where a put never replaces a blob with other bytes (write-once object storage),
        so a pool there cannot rewrite its config.json or manifests (`pool upgrade`)."""
        return True

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

    # Stores that overlap their puts with the caller set this and implement `_start_put`.
    _background: BackgroundPuts | None = None

    def sync_deletions(self) -> None:  # noqa: B027 - stores whose deletes are durable at once do nothing
        """Rule 5: returns once every earlier `delete` survives a power loss."""

    def remove_dead_temps(self) -> tuple[int, int]:
        """Deletes what writers killed midway left invisible in the store; (items, bytes).
        Stores whose half-written blobs vanish on their own (object stores' uploads) have none."""
        return 0, 0

    def put_soon(self, key: str, data: BlobData, release: Callable[[], None] | None = None) -> None:
        """Rule 9: a `put` that may complete in the background until `flush()`; with `release`,
        `data` is handed over until the store calls it."""
        if self._background is None:
            self.put(key, data)
            if release is not None:
                release()
            return
        self._background.redo_failed()
        self._background.submit(self._start_put(key, data, release))

    def flush(self) -> None:
        """Rule 9: returns once every earlier `put_soon` is durable and visible."""
        if self._background is not None:
            self._background.flush()

    def _start_put(self, key: str, data: BlobData, release: Callable[[], None] | None) -> DeferredPut:
        """The first half of a put_soon, in the caller's thread; the rest runs in the background.
        What it keeps for a redo must not change when the caller reuses its buffers: without
        `release` it copies what it keeps; with it, it calls `release()` once done with `data`."""
        raise NotImplementedError(f"{type(self).__name__} sets _background but has no _start_put")


class DeferredPut(Protocol):
    """One `put_soon` blob: `finish` completes it in the background; `redo` writes it again
    from its kept bytes, in the caller's thread, after `finish` failed."""

    def finish(self) -> None: ...

    def redo(self) -> None: ...


# A background thread with nothing to do for this long exits (the next put_soon starts one).
IDLE_SECONDS = 1.0


class BackgroundPuts:
    """Runs the second half of `put_soon` (rule 9) on up to `threads` threads.

    At most `queue` blobs wait or run here (the caller blocks beyond that), so memory stays
    bounded. Threads start with work and exit when idle, so an idle store holds none. A blob
    whose `finish` fails is kept and redone by the next `put_soon` or `flush` before anything
    else, in the caller's thread: the error reaches the caller there, so a backup's reconnect
    logic retries it like a failed `put`, and a commit never names a blob that is not durable.
    """

    def __init__(self, name: str, *, threads: int, queue: int) -> None:
        self._name = name
        self._max_threads = threads
        self._max_queue = queue
        self._jobs: list[DeferredPut] = []
        self._failed: list[DeferredPut] = []
        self._pending = 0  # queued or running
        self._threads = 0
        self._idle_threads = 0
        self._changed = threading.Condition()

    def submit(self, job: DeferredPut) -> None:
        with self._changed:
            while self._pending >= self._max_queue:
                self._changed.wait()
            self._jobs.append(job)
            self._pending += 1
            if self._idle_threads:
                self._changed.notify_all()
            elif self._threads < self._max_threads:
                self._threads += 1
                threading.Thread(target=self._run, name=self._name, daemon=True).start()

    def redo_failed(self) -> None:
        with self._changed:
            failed, self._failed = self._failed, []
        for index, job in enumerate(failed):
            try:
                job.redo()
            except BaseException:
                with self._changed:
                    self._failed[:0] = failed[index:]
                raise

    def flush(self) -> None:
        """Waits for every blob in flight, then redoes the failed ones (raising if one fails
        again). After it returns or raises, no temp file of a put_soon is left open."""
        with self._changed:
            while self._pending:
                self._changed.wait()
        self.redo_failed()

    def _run(self) -> None:
        while True:
            with self._changed:
                if not self._jobs:
                    self._idle_threads += 1
                    self._changed.wait_for(lambda: bool(self._jobs), timeout=IDLE_SECONDS)
                    self._idle_threads -= 1
                    if not self._jobs:
                        self._threads -= 1
                        return
                job = self._jobs.pop(0)
            try:
                job.finish()
            except BaseException:  # redone by the next put_soon or flush, where the caller sees it
                with self._changed:
                    self._failed.append(job)
            finally:
                with self._changed:
                    self._pending -= 1
                    self._changed.notify_all()
