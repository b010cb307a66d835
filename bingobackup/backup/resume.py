"""Reconnect and resume on the pool side (guide table 3: reconnect time, resume buffer).

`ResumingSink` wraps a pool's disk writer. When storing a chunk fails because the link to
the pool is down (an I/O or connection error, not a full pool), the channel keeps that
chunk and tries again with growing pauses until the reconnect window ends. Meanwhile the
other stages block on their bounded queues, so nothing new is read and the job's memory
stays bounded. When the window ends the disk fails with the cause and the window named.

What was sent but not yet acknowledged (durable on the pool) is kept by the pool writer and
sent again once the pool answers, so the disk goes on from there and is never read again:
a standard pack keeps up to `channels` × the resume buffer of its latest records
(`DiskWriter.keep_unacknowledged`, pools/standard.py); a dedup pool's blob store keeps each
pack until it is durable (rule 9 of storage/base.py). The buffer must hold at least one chunk
of the pool (checked at job preparation, `check_resume_buffer`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from bingobackup.errors import BingoBackupError
from bingobackup.format.manifest import ChunkRef, DiskManifest
from bingobackup.pools.writer import DedupMode, DiskWriter
from bingobackup.storage.errors import is_permanent_error

log = logging.getLogger("bingobackup.backup")
T = TypeVar("T")


class PoolLinkLost(BingoBackupError):
    pass


class ResumeBufferTooSmall(BingoBackupError):
    pass


def is_link_error(error: BaseException) -> bool:
    """A lost or flaky link to the pool's storage: the store's own word (rule 10 of storage/base.py)."""
    return not is_permanent_error(error)


def check_resume_buffer(resume_buffer_mib: int, chunk_size: int) -> None:
    """A channel holds one whole chunk while the link is down: the buffer must fit one."""
    if resume_buffer_mib * (1 << 20) < chunk_size:
        raise ResumeBufferTooSmall(
            f"resume buffer of {resume_buffer_mib} MiB per channel cannot hold one chunk of this pool "
            f"({chunk_size / (1 << 20):g} MiB); set options.resume_buffer_mib to at least "
            f"{-(-chunk_size // (1 << 20))}"
        )


class LinkRetry:
    """Retries one pool operation while the link is down, with growing pauses, until the
    reconnect window ends (shared by the backup's sink and the restore's chunk source)."""

    def __init__(
        self,
        *,
        window_seconds: float,
        what: str,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        first_pause: float = 0.05,
        max_pause: float = 5.0,
    ) -> None:
        self.window_seconds = window_seconds
        self._what = what
        self._clock, self._sleep = clock, sleep
        self._first_pause, self._max_pause = first_pause, max_pause
        self._lock = threading.Lock()
        self.reconnects = 0
        self.failed_attempts = 0

    def call(self, operation: Callable[[], T], where: str) -> T:
        """`operation`, ridden out with `resume` when it fails with a link error."""
        try:
            return operation()
        except Exception as error:
            if not is_link_error(error):
                raise
            return self.resume(operation, where, error)

    def resume(self, operation: Callable[[], T], where: str, first: Exception) -> T:
        """Runs `operation` again after `first` (a link error) until it succeeds or the window ends."""
        deadline = self._clock() + self.window_seconds
        pause, error = self._first_pause, first
        log.warning(
            "%s: link to the pool lost %s (%s); retrying for up to %.0f s",
            self._what,
            where,
            first,
            self.window_seconds,
        )
        while True:
            with self._lock:
                self.failed_attempts += 1
            if self._clock() + pause > deadline:
                raise PoolLinkLost(
                    f"{self._what}: the pool did not answer again within the reconnect time of "
                    f"{self.window_seconds / 60:g} min {where} (last error: {error}). Check the pool's "
                    "storage or network, or raise options.reconnect_minutes (1–60), and run the job again"
                ) from error
            self._sleep(pause)
            pause = min(pause * 2, self._max_pause)
            try:
                result = operation()
            except Exception as retry_error:
                if not is_link_error(retry_error):
                    raise
                error = retry_error
                continue
            with self._lock:
                self.reconnects += 1
            log.info("%s: pool reachable again; continuing %s", self._what, where)
            return result


class ResumingSink:
    """A `ChunkSink` whose `put_chunk` (and the last writes of `commit`) ride out a lost link to
    the pool with `retry`."""

    def __init__(self, sink: DiskWriter, retry: LinkRetry, *, buffer_bytes: int, channels: int = 1) -> None:
        self._sink = sink
        self.retry = retry
        self.buffer_bytes = buffer_bytes
        # The guide's buffer is per channel; the channels share one pool writer.
        sink.keep_unacknowledged(buffer_bytes * channels)
        self._lock = threading.Lock()
        self._held = 0
        self.peak_held_bytes = 0

    # -- delegated as is -------------------------------------------------------------------
    def chunk_digest(self, plaintext: bytes) -> str:
        return self._sink.chunk_digest(plaintext)

    def has(self, digest: str) -> bool:
        return self._sink.has(digest)

    def add_known(self, offset: int, length: int, digest: str) -> ChunkRef:
        return self._sink.add_known(offset, length, digest)

    def commit(self) -> DiskManifest:
        # A dedup pool writes its last packs here: a link lost now is ridden out like a put's.
        self._resuming(self._sink.settle, "while making the disk's chunks durable")
        return self._sink.commit()

    def abort(self) -> None:
        self._sink.abort()

    @property
    def bytes_stored(self) -> int:
        return self._sink.bytes_stored

    # -- the resuming part -------------------------------------------------------------------
    def put_chunk(
        self, offset: int, plaintext: bytes, digest: str | None = None, mode: DedupMode = "agent"
    ) -> ChunkRef:
        def store() -> ChunkRef:
            return self._sink.put_chunk(offset, plaintext, digest=digest, mode=mode)

        return self._resuming(store, f"at offset {offset}", held=len(plaintext))

    def _resuming(self, operation: Callable[[], T], where: str, held: int = 0) -> T:
        try:
            return operation()
        except Exception as error:
            if not is_link_error(error):
                raise
            self._hold(held)  # the one unacknowledged chunk this channel keeps
            try:
                return self.retry.resume(operation, where, error)
            finally:
                self._release(held)

    def _hold(self, length: int) -> None:
        with self._lock:
            self._held += length
            self.peak_held_bytes = max(self.peak_held_bytes, self._held)

    def _release(self, length: int) -> None:
        with self._lock:
            self._held -= length
