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
from collections.abc import Callable
from typing import TypeVar

from bingobackup.format.manifest import ChunkRef, DiskManifest
from bingobackup.jobs.linkretry import LinkRetry, is_link_error
from bingobackup.pools.writer import DedupMode, DiskWriter

log = logging.getLogger("bingobackup.backup")
T = TypeVar("T")


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
    def chunk_digest(self, plaintext: bytes | bytearray) -> str:
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
        self, offset: int, plaintext: bytes | bytearray, digest: str | None = None, mode: DedupMode = "agent"
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
