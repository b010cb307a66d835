"""Backup of a sparse disk through the channel pipeline, and restore back to a sparse image."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.mover import CHUNK, FakeClock, FakePool, TestImage, allocated_bytes, make_test_image, sha256_of

from bingobackup.format.manifest import ChunkRef
from bingobackup.mover.backup import DiskBackupResult, backup_disk
from bingobackup.mover.errors import BackupCancelledError, DiskReadError, RestoreChunkError
from bingobackup.mover.ratelimit import RateLimiter
from bingobackup.mover.restore import write_disk_from_pool


@pytest.fixture
def image(tmp_path: Path) -> TestImage:
    return make_test_image(tmp_path / "disk.raw")


def _backup(image: TestImage, pool: FakePool, **options: object) -> DiskBackupResult:
    writer = pool.open_disk_writer("vol-test", image.size)
    return backup_disk(image.path, writer, size_bytes=image.size, chunk_size=CHUNK, **options)  # type: ignore[arg-type]


def test_round_trip_restores_identical_bytes_with_holes_kept(image: TestImage, tmp_path: Path) -> None:
    pool = FakePool()
    result = _backup(image, pool)
    manifest = result.manifest
    # Zero and hole chunks are not in the manifest; chunk 3 repeats chunk 0 and is stored once.
    assert [ref.offset // CHUNK for ref in manifest.chunks] == [0, 3, 4, 8, 9]
    assert len(pool.blobs) == 4
    assert result.zero_bytes == image.zero_bytes
    assert result.hole_bytes >= image.hole_bytes + CHUNK // 2  # half of chunk 4 is a hole too
    assert result.bytes_read + result.hole_bytes == image.size

    output = tmp_path / "restored.raw"
    restored = write_disk_from_pool(pool, manifest, output, label="VM linux_local disk vol-test")
    assert sha256_of(output) == image.sha256
    assert output.stat().st_size == image.size
    # Only the data chunks are allocated: zero chunks and holes came back as holes.
    assert allocated_bytes(output) <= manifest.data_bytes + 2 * CHUNK
    assert restored.bytes_written == manifest.data_bytes
    assert not list(tmp_path.glob(".restored.raw.partial-*"))


def test_a_killed_restores_partial_file_is_removed_by_the_next_restore_to_that_file(
    image: TestImage, tmp_path: Path
) -> None:
    """Found by the crash harness (tests/reliability): an export killed mid-disk left its
    `.partial-<pid>` file beside the output for good. A live restore's file is left alone."""
    pool = FakePool()
    manifest = _backup(image, pool).manifest
    ended = subprocess.Popen(["true"])
    ended.wait()  # its process id now names no process
    dead = tmp_path / f".restored.raw.partial-{ended.pid}"
    dead.write_bytes(b"half a disk")
    alive = tmp_path / f".restored.raw.partial-{os.getppid()}"
    alive.write_bytes(b"another restore still writing")

    write_disk_from_pool(pool, manifest, tmp_path / "restored.raw")

    assert sha256_of(tmp_path / "restored.raw") == image.sha256
    assert sorted(tmp_path.glob(".restored.raw.partial-*")) == [alive]


def test_a_fully_allocated_restore_has_the_same_bytes(image: TestImage, tmp_path: Path) -> None:
    pool = FakePool()
    manifest = _backup(image, pool).manifest
    output = tmp_path / "full.raw"
    result = write_disk_from_pool(pool, manifest, output, create_sparse=False, channels=3)
    assert sha256_of(output) == image.sha256
    assert allocated_bytes(output) >= image.size
    assert result.bytes_written == image.size


def test_block_device_mode_reads_everything_and_gives_the_same_manifest(image: TestImage) -> None:
    sparse = _backup(image, FakePool(), sparse_aware=True)
    block = _backup(image, FakePool(), sparse_aware=False)
    assert block.manifest.chunks == sparse.manifest.chunks
    assert block.hole_bytes == 0
    assert block.bytes_read == image.size
    assert sparse.hole_bytes > 0
    assert block.zero_bytes == image.zero_bytes + image.hole_bytes  # whole-chunk holes read as zeros


@pytest.mark.parametrize("mode", ["agent", "server"])
def test_second_backup_sends_nothing_agent_side_and_stores_nothing_either_way(
    image: TestImage, mode: str
) -> None:
    pool = FakePool()
    first = _backup(image, pool, dedup_mode=mode)
    second = _backup(image, pool, dedup_mode=mode)
    data = first.manifest.data_bytes
    assert first.bytes_stored == data - CHUNK  # the repeated chunk is stored once
    assert second.bytes_stored == 0
    assert second.manifest.chunks == first.manifest.chunks
    if mode == "agent":
        # Chunk 3 repeats chunk 0: skipped if chunk 0 was stored before the check, else sent twice.
        assert data - CHUNK <= first.bytes_sent <= data
        assert second.bytes_sent == 0
        assert second.chunks_known == len(first.manifest.chunks)
    else:
        assert first.bytes_sent == data
        assert second.bytes_sent == data
        assert second.chunks_known == 0


def test_memory_stays_bounded_by_channels_whatever_the_disk_size(tmp_path: Path) -> None:
    chunk, chunks = 1 << 20, 40
    disk = tmp_path / "big.raw"
    with disk.open("wb") as handle:
        for _ in range(chunks):
            handle.write(os.urandom(chunk))

    class SlowDiscardingSink:
        """Keeps only digests, and is slower than the reader, so an unbounded reader would race ahead."""

        bytes_stored = 0

        def __init__(self) -> None:
            self.gate = threading.Semaphore(0)
            self.refs: list[ChunkRef] = []

        def chunk_digest(self, plaintext: bytes) -> str:
            return str(hash(plaintext))

        def has(self, digest: str) -> bool:
            return False

        def put_chunk(
            self, offset: int, plaintext: bytes, digest: str | None = None, mode: str = "agent"
        ) -> ChunkRef:
            self.gate.acquire(timeout=0.005)  # nobody releases it: a bounded slow write
            ref = ChunkRef(offset=offset, length=len(plaintext), digest=digest or "", stored_size=0)
            self.refs.append(ref)
            return ref

        def add_known(self, offset: int, length: int, digest: str) -> ChunkRef:
            raise AssertionError("has() is always False")

        def commit(self):  # type: ignore[no-untyped-def]
            from bingobackup.format.manifest import DiskManifest

            return DiskManifest(set_id="s", volume_id="v", size_bytes=chunk * chunks, chunk_size=chunk)

        def abort(self) -> None:
            pass

    sink = SlowDiscardingSink()
    tracemalloc.start()
    try:
        backup_disk(disk, sink, size_bytes=chunk * chunks, chunk_size=chunk, channels=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(sink.refs) == chunks
    # (channels + 2) buffers, plus the cached zero chunk and one transient copy; the extra
    # writer threads hold no buffer of their own.
    assert peak < (2 + 2 + 2) * chunk, f"peak {peak / chunk:.1f} chunks"


def test_a_sink_failure_stops_the_backup_and_names_the_offset(image: TestImage) -> None:
    pool = FakePool()
    writer = pool.open_disk_writer("vol-test", image.size)
    writer.fail_at_offset = 8 * CHUNK
    with pytest.raises(DiskReadError) as raised:
        backup_disk(image.path, writer, size_bytes=image.size, chunk_size=CHUNK)
    assert raised.value.offset == 8 * CHUNK
    assert f"offset {8 * CHUNK}" in str(raised.value)
    assert "No space left on device" in str(raised.value)
    assert writer.aborted and not writer.committed


def test_a_device_shorter_than_the_volume_is_reported(image: TestImage) -> None:
    pool = FakePool()
    writer = pool.open_disk_writer("vol-test", image.size + CHUNK)
    with pytest.raises(DiskReadError, match="ended at byte"):
        backup_disk(image.path, writer, size_bytes=image.size + CHUNK, chunk_size=CHUNK, sparse_aware=False)
    assert writer.aborted


def test_cancel_stops_the_backup_without_committing(image: TestImage) -> None:
    pool = FakePool()
    writer = pool.open_disk_writer("vol-test", image.size)
    cancel = threading.Event()
    put = writer.put_chunk

    def put_then_cancel(*args: object, **kwargs: object) -> ChunkRef:
        cancel.set()
        return put(*args, **kwargs)  # type: ignore[arg-type]

    writer.put_chunk = put_then_cancel  # type: ignore[method-assign]
    with pytest.raises(BackupCancelledError, match="cancelled"):
        backup_disk(image.path, writer, size_bytes=image.size, chunk_size=CHUNK, cancel=cancel)
    assert writer.aborted and not writer.committed


def test_progress_reaches_the_total(image: TestImage) -> None:
    seen: list[tuple[int, int]] = []
    _backup(image, FakePool(), progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (image.size, image.size)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_a_corrupt_chunk_on_restore_names_the_disk_offset_and_digest(
    image: TestImage, tmp_path: Path
) -> None:
    pool = FakePool()
    manifest = _backup(image, pool).manifest
    damaged = manifest.chunks[2]
    stored = pool.blobs[damaged.digest]
    pool.blobs[damaged.digest] = bytes([stored[0] ^ 1]) + stored[1:]  # random data may start with 1
    output = tmp_path / "restored.raw"
    with pytest.raises(RestoreChunkError) as raised:
        write_disk_from_pool(pool, manifest, output, label="VM linux_local disk vol-test")
    message = str(raised.value)
    assert "VM linux_local disk vol-test" in message
    assert f"offset {damaged.offset}" in message and damaged.digest in message
    assert "a backup set that does not hold this chunk" in message
    assert not output.exists() and not list(tmp_path.glob(".restored.raw.partial-*"))


def test_read_and_send_limits_pace_the_backup(image: TestImage) -> None:
    read_clock = FakeClock(datetime(2024, 1, 1, tzinfo=UTC))
    send_clock = FakeClock(datetime(2024, 1, 1, tzinfo=UTC))
    rate = 256 * 1024
    read_limiter = RateLimiter(
        rate, burst_bytes=CHUNK, clock=read_clock.monotonic, sleep=read_clock.sleep, now=read_clock.now
    )
    send_limiter = RateLimiter(
        rate, burst_bytes=CHUNK, clock=send_clock.monotonic, sleep=send_clock.sleep, now=send_clock.now
    )
    result = _backup(image, FakePool(), read_limiter=read_limiter, send_limiter=send_limiter)
    # Every byte read passed the read limiter, and every byte the pool stored the transfer
    # limiter (not the bytes sent: a chunk two channels send at once is stored once): one
    # burst free, the rest at `rate`.
    assert read_clock.elapsed == pytest.approx((result.bytes_read - CHUNK) / rate)
    assert send_clock.elapsed == pytest.approx((result.bytes_stored - CHUNK) / rate)


def test_cancel_is_prompt_even_under_a_slow_rate_limit(image: TestImage) -> None:
    pool = FakePool()
    writer = pool.open_disk_writer("vol-test", image.size)
    cancel = threading.Event()
    slow = RateLimiter(1024, burst_bytes=CHUNK)  # the whole disk would take ~10 minutes
    timer = threading.Timer(0.2, cancel.set)
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(BackupCancelledError):
            backup_disk(
                image.path, writer, size_bytes=image.size, chunk_size=CHUNK, read_limiter=slow, cancel=cancel
            )
    finally:
        timer.cancel()
    assert time.monotonic() - started < 5
    assert writer.aborted
