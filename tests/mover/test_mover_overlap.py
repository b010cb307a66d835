"""Throughput behaviours of the mover: a slow store or read of one chunk does not hold up the
others, a restore's write-back runs while it decodes (and its errors are not lost), and freed
chunk buffers are reused instead of being faulted in again."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from support.mover import CHUNK, FakePool, TestImage, make_test_image, sha256_of

from bingobackup.format.manifest import ChunkRef, DiskManifest
from bingobackup.mover import flusher as flusher_module
from bingobackup.mover.backup import backup_disk
from bingobackup.mover.errors import MoverError
from bingobackup.mover.restore import write_disk_from_pool
from bingobackup.pools import LocalDirBlobStore
from bingobackup.pools.open import create_pool_in

WAIT = 10.0  # a deadline, never reached when the behaviour holds


@pytest.fixture
def image(tmp_path: Path) -> TestImage:
    return make_test_image(tmp_path / "disk.raw")


class StallingStore(LocalDirBlobStore):
    """Holds the fsync of the first chunk blob until a later chunk blob is durable."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, "stalling")
        self.later_stored = threading.Event()
        self.armed = False
        self.lock = threading.Lock()

    def _sync_file(self, fd: int) -> None:
        with self.lock:
            stall, self.armed = self.armed, False
        if stall and not self.later_stored.wait(WAIT):
            raise TimeoutError("no other chunk was stored while this one was in flight")
        super()._sync_file(fd)
        if not stall:
            self.later_stored.set()


def test_a_chunk_waiting_on_storage_does_not_stop_the_others_even_with_one_channel(
    image: TestImage, tmp_path: Path
) -> None:
    store = StallingStore(tmp_path / "pool")
    pool = create_pool_in(store, "dedup", chunk_size=CHUNK)
    writer = pool.open_disk_writer("set-1", "vol-test", image.size)
    store.armed = True  # stall the first chunk's fsync (not the pool config's)
    result = backup_disk(image.path, writer, size_bytes=image.size, chunk_size=CHUNK, channels=1)
    assert store.later_stored.is_set()
    assert [ref.offset // CHUNK for ref in result.manifest.chunks] == [0, 3, 4, 8, 9]
    write_disk_from_pool(pool, result.manifest, tmp_path / "out.raw", channels=1)
    assert sha256_of(tmp_path / "out.raw") == image.sha256


def backed_up(image: TestImage) -> tuple[FakePool, DiskManifest]:
    """The test image backed up into an in-memory pool: what the restore tests read from."""
    pool = FakePool()
    writer = pool.open_disk_writer("vol-test", image.size)
    return pool, backup_disk(image.path, writer, size_bytes=image.size, chunk_size=CHUNK).manifest


class StallingSource:
    """Reads chunks from a FakePool, holding the first read until a later chunk was read."""

    def __init__(self, pool: FakePool) -> None:
        self.pool = pool
        self.first: int | None = None
        self.lock = threading.Lock()
        self.later_read = threading.Event()

    def read_chunk(self, ref: ChunkRef) -> bytes:
        with self.lock:
            stall = self.first is None
            if stall:
                self.first = ref.offset
        if stall and not self.later_read.wait(WAIT):
            raise TimeoutError("no other chunk was read while this one was in flight")
        data = self.pool.read_chunk(ref)
        if not stall:
            self.later_read.set()
        return data


def test_a_slow_chunk_read_does_not_stop_the_restore_of_the_others(image: TestImage, tmp_path: Path) -> None:
    pool, manifest = backed_up(image)
    output = tmp_path / "restored.raw"
    source = StallingSource(pool)
    write_disk_from_pool(source, manifest, output, channels=1)
    assert source.later_read.is_set()
    assert sha256_of(output) == image.sha256


def test_the_restore_target_is_written_back_while_the_restore_runs(
    image: TestImage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool, manifest = backed_up(image)
    monkeypatch.setattr(flusher_module, "FLUSH_EVERY", CHUNK)
    flushed_before_last_chunk = threading.Event()
    last = max(ref.offset for ref in manifest.chunks)
    read_last = threading.Event()
    real_fdatasync = os.fdatasync

    def fdatasync(fd: int) -> None:
        if not read_last.is_set():
            flushed_before_last_chunk.set()
        real_fdatasync(fd)

    class Source:
        def read_chunk(self, ref: ChunkRef) -> bytes:
            if ref.offset == last:  # hold the last chunk until the earlier ones were written back
                flushed_before_last_chunk.wait(WAIT)
                read_last.set()
            return pool.read_chunk(ref)

    monkeypatch.setattr(flusher_module.os, "fdatasync", fdatasync)
    output = tmp_path / "restored.raw"
    write_disk_from_pool(Source(), manifest, output, channels=1)
    assert flushed_before_last_chunk.is_set()
    assert sha256_of(output) == image.sha256


@pytest.mark.parametrize(
    ("flush_every", "failing"),
    [(CHUNK, "fdatasync"), (1 << 40, "fsync")],
    ids=["seen by the flusher", "seen by the final fsync"],
)
def test_a_write_back_error_fails_the_restore_and_leaves_no_image(
    image: TestImage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flush_every: int, failing: str
) -> None:
    pool, manifest = backed_up(image)
    monkeypatch.setattr(flusher_module, "FLUSH_EVERY", flush_every)
    tried = threading.Event()
    last = max(ref.offset for ref in manifest.chunks)

    def write_back(fd: int) -> None:
        tried.set()
        raise OSError(errno.EIO, "Input/output error")

    class Source:
        def read_chunk(self, ref: ChunkRef) -> bytes:
            if ref.offset == last and failing == "fdatasync":  # the flusher's turn comes first
                tried.wait(WAIT)
            return pool.read_chunk(ref)

    monkeypatch.setattr(flusher_module.os, failing, write_back)
    output = tmp_path / "restored.raw"
    with pytest.raises(MoverError, match="Input/output error") as raised:
        write_disk_from_pool(Source(), manifest, output, channels=1)
    assert "the partial file was removed" in str(raised.value)
    assert not output.exists()
    assert not list(tmp_path.glob(".restored.raw.partial-*"))


FAULTS_SCRIPT = """
import resource, sys
from bingobackup.mover.memory import keep_freed_buffers
if sys.argv[1] == "tuned":
    assert keep_freed_buffers()
def cycle():
    buffers = [bytearray(4 << 20) for _ in range(6)]  # a few channels' chunks, then all freed
    del buffers
cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    cycle()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", FAULTS_SCRIPT, mode], capture_output=True, text=True, check=True, timeout=60
    )
    return int(done.stdout.strip())


def test_freed_chunk_buffers_are_reused_without_page_faults() -> None:
    pages_per_cycle = 6 * (4 << 20) // 4096
    # Untuned, glibc returns the freed buffers to the kernel and faults them in again.
    assert _faults("untuned") > 10 * pages_per_cycle
    assert _faults("tuned") < pages_per_cycle
