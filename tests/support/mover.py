"""Test helpers for the data mover: a sparse test image and an in-memory pool fake."""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from bingobackup.checksums import file_sha256 as sha256_of
from bingobackup.format.manifest import ChunkRef, DiskManifest

CHUNK = 64 * 1024


def allocated_bytes(path: Path) -> int:
    return path.stat().st_blocks * 512


@dataclass(frozen=True)
class TestImage:
    __test__ = False  # not a test class, despite the name

    path: Path
    size: int
    sha256: str
    data_chunks: int  # chunks holding non-zero data
    zero_bytes: int  # bytes written explicitly as zeros (allocated, all zero)
    hole_bytes: int  # bytes never written (holes), whole chunks only


def make_test_image(path: Path, chunk: int = CHUNK) -> TestImage:
    """A sparse raw disk, chunk by chunk:
    0 random | 1 hole | 2 explicit zeros | 3 repeat of 0 | 4 half data, half hole |
    5-6 holes | 7 zeros | 8 text | tail: a short last chunk of data."""
    rng = bytes(os.urandom(chunk))
    size = 9 * chunk + chunk // 3
    with path.open("wb") as handle:
        handle.truncate(size)
        handle.seek(0)
        handle.write(rng)
        handle.seek(2 * chunk)
        handle.write(bytes(chunk))
        handle.seek(3 * chunk)
        handle.write(rng)
        handle.seek(4 * chunk)
        handle.write(os.urandom(chunk // 2))
        handle.seek(7 * chunk)
        handle.write(bytes(chunk))
        handle.seek(8 * chunk)
        handle.write((b"the quick brown fox jumps over the lazy dog\n" * chunk)[:chunk])
        handle.write(os.urandom(chunk // 3))
    return TestImage(
        path=path,
        size=size,
        sha256=sha256_of(path),
        data_chunks=5,  # 0, 3, 4, 8, tail (3 repeats 0)
        zero_bytes=2 * chunk,
        hole_bytes=3 * chunk,
    )


class FakePool:
    """An in-memory dedup pool shared by the writers opened on it (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.blobs: dict[str, bytes] = {}

    def chunk_digest(self, plaintext: bytes) -> str:
        return hashlib.sha256(plaintext).hexdigest()

    def open_disk_writer(self, volume_id: str, size_bytes: int, chunk_size: int = CHUNK) -> FakeWriter:
        return FakeWriter(self, volume_id, size_bytes, chunk_size)

    def read_chunk(self, ref: ChunkRef) -> bytes:
        with self.lock:
            data = self.blobs[ref.digest]
        if self.chunk_digest(data) != ref.digest:
            raise ValueError(f"digest mismatch for chunk {ref.digest}")
        return data


@dataclass
class FakeWriter:
    pool: FakePool
    volume_id: str
    size_bytes: int
    chunk_size: int
    refs: dict[int, ChunkRef] = field(default_factory=dict)
    bytes_stored: int = 0
    aborted: bool = False
    committed: bool = False
    fail_at_offset: int | None = None

    def chunk_digest(self, plaintext: bytes) -> str:
        return self.pool.chunk_digest(plaintext)

    def has(self, digest: str) -> bool:
        with self.pool.lock:
            return digest in self.pool.blobs

    def put_chunk(
        self, offset: int, plaintext: bytes, digest: str | None = None, mode: str = "agent"
    ) -> ChunkRef:
        if offset == self.fail_at_offset:
            raise OSError(28, "No space left on device")
        digest = digest or self.chunk_digest(plaintext)
        with self.pool.lock:
            if digest not in self.pool.blobs:
                self.pool.blobs[digest] = bytes(plaintext)
                self.bytes_stored += len(plaintext)
        return self._record(offset, len(plaintext), digest)

    def add_known(self, offset: int, length: int, digest: str) -> ChunkRef:
        return self._record(offset, length, digest)

    def _record(self, offset: int, length: int, digest: str) -> ChunkRef:
        ref = ChunkRef(offset=offset, length=length, digest=digest, stored_size=length)
        with self.pool.lock:
            self.refs[offset] = ref
        return ref

    def commit(self) -> DiskManifest:
        self.committed = True
        return DiskManifest(
            set_id="set-test",
            volume_id=self.volume_id,
            size_bytes=self.size_bytes,
            chunk_size=self.chunk_size,
            chunks=tuple(self.refs[offset] for offset in sorted(self.refs)),
        )

    def abort(self) -> None:
        self.aborted = True


class FakeClock:
    """Monotonic time and UTC wall time that advance only when the limiter sleeps."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.elapsed = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.elapsed

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.elapsed += seconds

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed)
