"""One disk's backup as three stages that run at the same time: read → dedup → write.

The backup flow runs each stage as its own Prefect task ("read disk chunks", "dedup",
"write to pool"), all three handed the same `DiskPipeline`; `run()` does the same with
plain threads. Chunks pass between stages through bounded queues, and every buffer holds
one of `channels + 2` slots from the moment it is read until it is sealed and handed to the
pool or dropped, so memory stays at about (channels + 2) × chunk size whatever the disk size
(plus the few sealed chunks a pool's blob store holds while it finishes them in the
background, rule 9 of bingobackup/storage/base.py). The write stage runs `channels` threads:
compressing and encrypting is the work, and the pool's fsyncs and uploads overlap it on the
blob store's own threads instead of holding a writer.

A failure in any stage stops the other two promptly (they poll a shared stop flag), the
pool writer is aborted, and `write()` raises the error with the disk offset named.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bingobackup.format.zero import is_zero
from bingobackup.mover.chunks import ProgressThrottle, human_bytes
from bingobackup.mover.crew import Crew, thread_in_context
from bingobackup.mover.memory import keep_freed_buffers
from bingobackup.mover.ratelimit import RateLimiter
from bingobackup.mover.reading import (
    Chunk,
    ChunkSink,
    Counters,
    DiskBackupResult,
    chunk_pieces,
    pread_exact,
    pread_into,
    raise_stopped,
)
from bingobackup.pools.writer import DedupMode
from bingobackup.sparse import data_extents

log = logging.getLogger("bingobackup.backup")


def transfer_summary(read: int, sent: int, stored: int, seconds: float) -> str:
    """`read 2 GiB, sent 1.2 GiB, stored 800 MiB in 12.5 s (171.8 MB/s)`: a disk's or a VM's
    bytes in a run's log (MB/s of bytes read, as the run's summary table counts them)."""
    rate = f"{read / 1e6 / seconds:.1f} MB/s" if seconds > 0 else "- MB/s"
    return (
        f"read {human_bytes(read)}, sent {human_bytes(sent)}, stored {human_bytes(stored)} "
        f"in {seconds:.1f} s ({rate})"
    )


class DiskPipeline:
    def __init__(
        self,
        device_path: Path | str,
        sink: ChunkSink,
        *,
        size_bytes: int,
        chunk_size: int,
        channels: int = 2,
        sparse_aware: bool = True,
        dedup_mode: DedupMode = "agent",
        read_limiter: RateLimiter | None = None,
        send_limiter: RateLimiter | None = None,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
        label: str = "",
    ) -> None:
        if channels < 1 or chunk_size <= 0:
            raise ValueError("channels must be ≥ 1 and chunk_size positive")
        self.device = Path(device_path)
        # What the disk is to people (`vol-… (web-01, system)`): the stage tasks are named by it.
        self.label = label or self.device.name
        self.sink = sink
        self.size_bytes = size_bytes
        self.chunk_size = chunk_size
        self.channels = channels
        self.sparse_aware = sparse_aware
        self.dedup_mode = dedup_mode
        self.read_limiter = read_limiter
        self.send_limiter = send_limiter
        self.crew = Crew(f"backup-{self.device.name}", cancel)
        self.counters = Counters()
        self.slots = channels + 2
        # One writer per channel: the pool's storage works on its blob store's own threads
        # (put_soon), and more writers than cores only compete for them (measured: 2 writers
        # 1.39–1.44 s, 4 writers 1.49–1.52 s for the benchmark's first backup).
        self.writers = channels
        self._slots = threading.Semaphore(self.slots)
        self._to_dedup: queue.Queue[Chunk | None] = queue.Queue(maxsize=channels)
        self._to_write: queue.Queue[tuple[Chunk, str | None] | None] = queue.Queue(maxsize=self.slots)
        self._throttle = ProgressThrottle(progress, size_bytes, time.monotonic)
        self._paced_lock = threading.Lock()
        self._paced = 0  # the pool's bytes_stored already counted by the transfer limit
        keep_freed_buffers()
        self._started = time.monotonic()

    # -- the three stages: each blocks until its part is done ---------------------------------

    def read(self) -> int:
        """Read every data chunk of the disk (holes skipped unread); returns bytes read."""
        self._stage("reader", self._read)
        return self.counters.bytes_read

    def dedup(self) -> int:
        """Drop zero chunks and, agent-side, chunks the pool already holds; returns bytes passed on."""
        self._stage_group("dedup", self._dedup, self.channels, self._to_write, self.writers)
        return self.counters.bytes_sent

    def write(self) -> DiskBackupResult:
        """Store the new chunks, then commit the disk's manifest; the pool writer is aborted on failure."""
        self._stage_group("write", self._write, self.writers, None, 0)
        if self.crew.failure is not None or self.crew.cancelled:
            self.sink.abort()
            raise_stopped(self.crew, self.device)
        manifest = self.sink.commit()
        self._throttle.report(self.size_bytes, final=True)
        c = self.counters
        result = DiskBackupResult(
            manifest=manifest,
            bytes_read=c.bytes_read,
            bytes_sent=c.bytes_sent,
            bytes_stored=self.sink.bytes_stored,
            zero_bytes=c.zero_bytes,
            hole_bytes=c.hole_bytes,
            chunks_sent=c.chunks_sent,
            chunks_known=c.chunks_known,
            seconds=time.monotonic() - self._started,
        )
        log.info(
            "disk %s backed up: %s",
            self.label,
            transfer_summary(result.bytes_read, result.bytes_sent, result.bytes_stored, result.seconds),
        )
        return result

    def run(self) -> DiskBackupResult:
        """All three stages in threads of this process (what the flow does with tasks)."""
        threads = [thread_in_context(self.read), thread_in_context(self.dedup)]
        for thread in threads:
            thread.start()
        try:
            return self.write()
        finally:
            for thread in threads:
                thread.join()

    # -- machinery ----------------------------------------------------------------------------

    def _stage(self, role: str, target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as error:  # stop the other stages, then let write() report it
            self.crew.fail(error, self.crew._offsets.get(threading.get_ident()))

    def _stage_group(
        self,
        role: str,
        target: Callable[[], None],
        count: int,
        downstream: queue.Queue[Any] | None,
        downstream_workers: int,
    ) -> None:
        workers = [thread_in_context(self._stage, f"{role}-{i}", target) for i in range(count)]
        for worker in workers:
            worker.start()
        for worker in workers:
            while worker.is_alive():
                worker.join(0.2)
                self._throttle.report(self.counters.done_bytes)
        if downstream is not None:
            for _ in range(downstream_workers):
                if not self.crew.put(downstream, None):
                    break

    def _done(self, length: int) -> None:
        """A chunk's buffer is gone: count it and give its slot back (drop references first)."""
        with self.counters.lock:
            self.counters.done_bytes += length
        self._slots.release()

    def _read(self) -> None:
        counters, crew = self.counters, self.crew
        fd = os.open(self.device, os.O_RDONLY)
        try:
            extents = (
                data_extents(fd, 0, self.size_bytes) if self.sparse_aware else iter([(0, self.size_bytes)])
            )
            for offset, length, ranges in chunk_pieces(iter(extents), self.size_bytes, self.chunk_size):
                crew.working_on(offset)
                wanted = sum(stop - start for start, stop in ranges)
                with counters.lock:
                    counters.hole_bytes += length - wanted
                    if not ranges:
                        counters.done_bytes += length
                if not ranges:
                    continue
                if not crew.acquire(self._slots):
                    return
                if self.read_limiter is not None:
                    self.read_limiter.acquire(wanted, should_stop=crew.should_stop)
                data: bytes | bytearray
                if ranges == [(offset, offset + length)]:
                    data = pread_exact(fd, length, offset, self.device)
                else:
                    # Holes inside the chunk stay zero; the data ranges are read in place
                    # (without the GIL): no copy of the chunk is made while other stages wait.
                    data = bytearray(length)
                    with memoryview(data) as view:
                        for start, stop in ranges:
                            pread_into(fd, view[start - offset : stop - offset], start, self.device)
                with counters.lock:
                    counters.bytes_read += wanted
                if is_zero(data):  # dropped here: a zero chunk holds no slot while others queue
                    with counters.lock:
                        counters.zero_bytes += length
                    del data
                    self._done(length)
                    continue
                chunk = Chunk(offset, data)
                del data
                if not crew.put(self._to_dedup, chunk):
                    return
                del chunk
        finally:
            os.close(fd)
        for _ in range(self.channels):
            if not crew.put(self._to_dedup, None):
                return

    def _dedup(self) -> None:
        counters, crew, sink = self.counters, self.crew, self.sink
        while True:
            ok, chunk = crew.get(self._to_dedup)
            if not ok or chunk is None:
                return
            crew.working_on(chunk.offset)
            length = len(chunk.data)
            digest = None
            if self.dedup_mode == "agent":
                digest = sink.chunk_digest(chunk.data)
                if sink.has(digest):
                    sink.add_known(chunk.offset, length, digest)
                    with counters.lock:
                        counters.chunks_known += 1
                    del chunk
                    self._done(length)
                    continue
            if not crew.put(self._to_write, (chunk, digest)):
                return
            del chunk

    def _write(self) -> None:
        counters, crew, sink = self.counters, self.crew, self.sink
        while True:
            ok, item = crew.get(self._to_write)
            if not ok or item is None:
                return
            chunk, digest = item
            del item
            crew.working_on(chunk.offset)
            length = len(chunk.data)
            try:
                sink.put_chunk(chunk.offset, chunk.data, digest=digest, mode=self.dedup_mode)
                with counters.lock:
                    counters.bytes_sent += length
                    counters.chunks_sent += 1
            finally:
                del chunk
                self._done(length)
            self._pace_transfer()

    def _pace_transfer(self) -> None:
        """The transfer limit counts what goes to the pool's storage: the envelopes it newly
        keeps, after compression and encryption (a duplicate the pool drops costs nothing).
        Taken after the chunk is stored, since only the pool knows its envelope's size: the
        bucket goes into debt and the next chunk of any channel waits it off."""
        if self.send_limiter is None:
            return
        with self._paced_lock:
            stored = self.sink.bytes_stored
            new, self._paced = stored - self._paced, stored
        self.send_limiter.acquire(new, should_stop=self.crew.should_stop)
