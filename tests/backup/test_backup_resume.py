"""Reconnect and resume on the pool side: a pool whose storage fails for a while.

The disk goes on from the unacknowledged chunk once the storage answers again (nothing is
read twice), gives up with the cause when the reconnect time runs out, and holds at most
one chunk per channel meanwhile."""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bingobackup.backup.resume import ResumingSink
from bingobackup.jobs.linkretry import LinkRetry, PoolLinkLost, ResumeBufferTooSmall, check_resume_buffer
from bingobackup.mover.stages import DiskPipeline
from bingobackup.pools import Pool
from bingobackup.pools.open import create_pool_in
from bingobackup.storage.base import Buffer
from bingobackup.storage.errors import PoolFullError
from bingobackup.storage.localdir import LocalDirBlobStore
from bingobackup.storage.testing.faulty import FaultyBlobStore, fail_midway

CHUNK = 64 * 1024
CHUNKS = 24
CHANNELS = 3


pytestmark = pytest.mark.usefixtures("small_packs")  # conftest.py: the pool writes mid-disk


class OutageStore(FaultyBlobStore):
    """Healthy for `healthy_writes` blob writes, then every write fails (link down) until
    `link_back()` says so. Pack writes run on several threads: each decides under one lock."""

    def __init__(self, root: Path, healthy_writes: int, code: int = errno.EIO) -> None:
        super().__init__(root, "outage")
        self.healthy_writes, self.code = healthy_writes, code
        self.good_writes = 0
        self.written_bytes = 0  # what reached the storage, re-sent bytes included
        self.link_back: Callable[[], bool] = lambda: True
        self._count_lock = threading.Lock()

    def _write_all(self, fd: int, parts: tuple[Buffer, ...]) -> None:
        with self._count_lock:
            failing = self.good_writes >= self.healthy_writes and not self.link_back()
            if failing:
                self.failures += 1
            else:
                self.good_writes += 1
        if failing:
            fail_midway(fd, parts, self.code)
        LocalDirBlobStore._write_all(self, fd, parts)
        with self._count_lock:
            self.written_bytes += sum(len(memoryview(part).cast("B")) for part in parts)


def disk_image(path: Path) -> bytes:
    data = os.urandom(CHUNK * CHUNKS)
    path.write_bytes(data)
    return data


def pool_on(store: FaultyBlobStore) -> Pool:
    store.fail_with(None)
    return create_pool_in(store, "dedup", chunk_size=CHUNK)


def run_disk(pool: Pool, image: Path, sink: ResumingSink) -> object:
    pipeline = DiskPipeline(image, sink, size_bytes=image.stat().st_size, chunk_size=CHUNK, channels=CHANNELS)
    return pipeline.run()


def test_a_pool_outage_inside_the_window_resumes_without_reading_anything_twice(tmp_path: Path) -> None:
    data = disk_image(tmp_path / "disk.raw")
    store = OutageStore(tmp_path / "pool", healthy_writes=8)
    pool = pool_on(store)
    sink = ResumingSink(
        pool.open_disk_writer("set-1", "vol-1", len(data)),
        LinkRetry(window_seconds=30, what="disk", first_pause=0.01),
        buffer_bytes=1 << 20,
    )
    # Down until the backup has noticed and retried in vain at least once: pack writes run in
    # the background, so a short outage may be ridden out by the store's own redo unseen.
    store.link_back = lambda: sink.retry.failed_attempts >= 2
    result = run_disk(pool, tmp_path / "disk.raw", sink)

    assert store.failures >= 2 and sink.retry.reconnects >= 1  # the link was down for a while
    assert result.bytes_read == len(data)  # every chunk read once: no restart from the beginning
    assert result.chunks_sent == CHUNKS
    # While the link was down each channel held its one unacknowledged chunk, never more:
    # the memory bound (channels × resume buffer) holds because one chunk fits the buffer.
    assert CHUNK <= sink.peak_held_bytes <= CHANNELS * CHUNK <= CHANNELS * sink.buffer_bytes
    restored = b"".join(plain for _, plain in pool.iter_disk(result.manifest))  # type: ignore[attr-defined]
    assert hashlib.sha256(restored).digest() == hashlib.sha256(data).digest()


def test_a_standard_pack_resends_only_its_unacknowledged_records_after_a_lost_link(tmp_path: Path) -> None:
    """One pack per disk: before, a write that failed ended the pack and the disk had to be
    read again from its first byte (the VM's retry)."""
    data = disk_image(tmp_path / "disk.raw")
    # Down from the pack's 13th record: kept records 11 and 12 (acknowledged up to 10).
    store = OutageStore(tmp_path / "pool", healthy_writes=13)
    store.fail_with(None)
    pool = create_pool_in(store, "standard", chunk_size=CHUNK)
    before = {info.key: info.size for info in store.list()}
    store.written_bytes = store.good_writes = 0
    buffer = 2 * CHUNK  # resume_buffer_mib, per channel
    sink = ResumingSink(
        pool.open_disk_writer("set-1", "vol-1", len(data)),
        LinkRetry(window_seconds=30, what="disk", first_pause=0.01),
        buffer_bytes=buffer,
        channels=CHANNELS,
    )
    store.link_back = lambda: sink.retry.failed_attempts >= 2
    result = run_disk(pool, tmp_path / "disk.raw", sink)

    assert store.failures >= 2 and sink.retry.reconnects >= 1  # down mid-disk for a while
    assert result.bytes_read == len(data)  # nothing read twice
    new_blobs = sum(info.size for info in store.list() if info.key not in before)
    resent = store.written_bytes - new_blobs
    # Re-sent: the records written since the pack was last made durable, within the buffer.
    assert 0 < resent <= CHANNELS * buffer
    restored = b"".join(plain for _, plain in pool.iter_disk(result.manifest))  # type: ignore[attr-defined]
    assert hashlib.sha256(restored).digest() == hashlib.sha256(data).digest()
    reopened = b"".join(  # the pack rebuilds the same disk on its own (no leftover bytes in it)
        plain
        for _, plain in pool.iter_disk(pool.load_manifest("set-1", "vol-1"))  # type: ignore[attr-defined]
    )
    assert reopened == restored


def test_a_standard_pack_on_object_storage_resumes_after_failed_part_uploads(
    moto_s3: str, tmp_path: Path
) -> None:
    """S3 keeps the parts it acknowledged; the writer cuts its unsent part back and goes on."""
    from support.backends import S3Case

    chunk, chunks = 512 * 1024, 32  # a 5 MiB part holds about ten records
    image = tmp_path / "disk.raw"
    data = os.urandom(chunk * chunks)
    image.write_bytes(data)
    case = S3Case(moto_s3, "s3-standard")
    try:
        pool = create_pool_in(case.store, "standard", chunk_size=chunk)
        writer = pool.open_disk_writer("set-1", "vol-1", len(data))
        real_put, puts = writer.put_chunk, itertools.count(1)  # retries count too

        def put_chunk(*args: Any, **kwargs: Any) -> Any:
            if next(puts) == 14:  # the link goes down before the second part's upload
                case.fail_with(errno.EIO)
            return real_put(*args, **kwargs)

        writer.put_chunk = put_chunk  # type: ignore[method-assign]
        retries: list[LinkRetry] = []

        def sleep(seconds: float) -> None:
            if retries[0].failed_attempts >= 2:
                case.fail_with(None)
            time.sleep(seconds)

        retries.append(LinkRetry(window_seconds=30, what="disk", first_pause=0.01, sleep=sleep))
        sink = ResumingSink(writer, retries[0], buffer_bytes=2 * chunk, channels=CHANNELS)
        result = DiskPipeline(image, sink, size_bytes=len(data), chunk_size=chunk, channels=CHANNELS).run()

        assert case.failures >= 1 and sink.retry.reconnects >= 1
        assert result.bytes_read == len(data)  # nothing read twice
        # Each try after the lost link re-sent what was not acknowledged, within the buffer.
        assert 0 < max(writer.resends) <= CHANNELS * 2 * chunk
        restored = b"".join(plain for _, plain in pool.iter_disk(result.manifest))  # type: ignore[attr-defined]
        assert hashlib.sha256(restored).digest() == hashlib.sha256(data).digest()
        assert case.leftovers() == []
    finally:
        case.proxy.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_an_outage_longer_than_the_reconnect_time_fails_the_disk_with_the_cause(tmp_path: Path) -> None:
    store = FaultyBlobStore(tmp_path / "pool", "down")
    pool = pool_on(store)
    clock = FakeClock()
    sink = ResumingSink(
        pool.open_disk_writer("set-1", "vol-1", CHUNK),
        LinkRetry(window_seconds=60, what="disk vol-1 of db", clock=clock.clock, sleep=clock.sleep),
        buffer_bytes=1 << 20,
    )
    store.fail_with(errno.EHOSTUNREACH)
    with pytest.raises(PoolLinkLost) as raised:
        sink.put_chunk(0, os.urandom(CHUNK))
        sink.commit()  # the chunk's pack is written here at the latest
    message = str(raised.value)
    assert "disk vol-1 of db" in message and "reconnect time of 1 min" in message
    assert os.strerror(errno.EHOSTUNREACH) in message and "reconnect_minutes" in message
    assert 50 <= clock.now <= 60  # retried through the window, not beyond it
    assert sink.retry.failed_attempts > 5


def test_a_full_pool_is_not_a_lost_link_and_fails_at_once(tmp_path: Path) -> None:
    store = FaultyBlobStore(tmp_path / "pool", "full")
    pool = pool_on(store)
    clock = FakeClock()
    sink = ResumingSink(
        pool.open_disk_writer("set-1", "vol-1", CHUNK),
        LinkRetry(window_seconds=600, what="disk", clock=clock.clock, sleep=clock.sleep),
        buffer_bytes=1 << 20,
    )
    store.fail_with(errno.ENOSPC)
    with pytest.raises(PoolFullError):
        sink.put_chunk(0, os.urandom(CHUNK))
        sink.commit()
    assert clock.now == 0 and sink.retry.failed_attempts == 0


def test_resume_buffer_must_hold_one_chunk() -> None:
    check_resume_buffer(4, 4 << 20)
    with pytest.raises(ResumeBufferTooSmall, match="resume_buffer_mib to at least 8"):
        check_resume_buffer(4, 8 << 20)


def test_a_link_lost_as_the_disk_writer_opens_is_ridden_out(tmp_path: Path) -> None:
    """Opening a disk's writer writes the pool's writer lock (format 4): a link down at that
    moment is retried within the reconnect time like a chunk's write, then the backup goes on."""
    store = OutageStore(tmp_path / "pool", healthy_writes=0)
    pool = pool_on(store)
    clock = FakeClock()
    retry = LinkRetry(window_seconds=60, what="disk vol-1 of db", clock=clock.clock, sleep=clock.sleep)
    store.link_back = lambda: clock.now >= 5  # down for the first 5 s of the backup
    writer = retry.call(lambda: pool.open_disk_writer("set-1", "vol-1", CHUNK), "while opening")
    assert retry.reconnects == 1 and 5 <= clock.now < 60
    sink = ResumingSink(writer, retry, buffer_bytes=1 << 20)
    data = os.urandom(CHUNK)
    sink.put_chunk(0, data)
    manifest = sink.commit()
    assert pool.read_chunk(manifest.chunks[0]) == data
    with pytest.raises(ValueError):  # not a link error: raised at once, nothing retried
        retry.call(lambda: int("x"), "while parsing")
    assert retry.reconnects == 1
