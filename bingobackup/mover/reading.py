"""What the disk reader's stages share: the pool writer interface, the result, a chunk in flight,
the counters, the disk walk by data ranges, an exact read and the stop that names the failure.

Its own module so `backup` (the entry point) and `stages` (the threads) both build on it
without importing each other.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from bingobackup.errors import BingoBackupError
from bingobackup.format.manifest import ChunkRef, DiskManifest
from bingobackup.mover.chunks import chunk_spans, human_bytes
from bingobackup.mover.crew import Crew
from bingobackup.mover.errors import BackupCancelledError, DiskReadError
from bingobackup.pools.writer import DedupMode


class ChunkSink(Protocol):
    """What the mover needs from a pool's per-disk writer (thread-safe)."""

    def chunk_digest(self, plaintext: bytes | bytearray) -> str: ...

    def has(self, digest: str) -> bool: ...

    def put_chunk(
        self, offset: int, plaintext: bytes | bytearray, digest: str | None = None, mode: DedupMode = "agent"
    ) -> ChunkRef: ...

    def add_known(self, offset: int, length: int, digest: str) -> ChunkRef: ...

    def commit(self) -> DiskManifest: ...

    def abort(self) -> None: ...

    @property
    def bytes_stored(self) -> int: ...


class DiskBackupResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    manifest: DiskManifest
    bytes_read: int = Field(description="bytes read from the device (holes are not read)")
    bytes_sent: int = Field(description="plaintext bytes handed to the pool (known chunks are not sent)")
    bytes_stored: int = Field(description="bytes the pool newly stored for this disk")
    zero_bytes: int = Field(description="bytes read that were all zero (stored as nothing)")
    hole_bytes: int = Field(description="bytes skipped without reading: holes the filesystem reported")
    chunks_sent: int
    chunks_known: int = Field(description="chunks the pool already held (agent-side dedup)")
    seconds: float


class Chunk:
    __slots__ = ("data", "offset")

    def __init__(self, offset: int, data: bytes | bytearray) -> None:
        self.offset = offset
        self.data = data


class Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bytes_read = 0
        self.bytes_sent = 0
        self.zero_bytes = 0
        self.hole_bytes = 0
        self.chunks_sent = 0
        self.chunks_known = 0
        self.done_bytes = 0


def chunk_pieces(
    extents: Iterator[tuple[int, int]], size: int, chunk_size: int
) -> Iterator[tuple[int, int, list[tuple[int, int]]]]:
    """For each chunk: (offset, length, the data ranges inside it as (start, end))."""
    current = next(extents, None)
    for offset in chunk_spans(size, chunk_size):
        end = min(offset + chunk_size, size)
        ranges: list[tuple[int, int]] = []
        while current is not None and current[0] < end:
            start, stop = max(current[0], offset), min(current[0] + current[1], end)
            if stop > start:
                ranges.append((start, stop))
            if current[0] + current[1] <= end:
                current = next(extents, None)
            else:
                break
        yield offset, end - offset, ranges


def pread_exact(fd: int, length: int, offset: int, device: Path) -> bytes:
    data = os.pread(fd, length, offset)
    while len(data) < length:
        more = os.pread(fd, length - len(data), offset + len(data))
        if not more:
            raise _ended(device, offset + len(data), offset)
        data += more
    return data


def pread_into(fd: int, view: memoryview, offset: int, device: Path) -> None:
    """Fills `view` from `offset` of the disk: read in place, no copy."""
    done = 0
    while done < len(view):
        count = os.preadv(fd, [view[done:]], offset + done)
        if not count:
            raise _ended(device, offset + done, offset)
        done += count


def _ended(device: Path, position: int, offset: int) -> DiskReadError:
    return DiskReadError(
        f"{device} ended at byte {position} but the volume is larger; check that the "
        "attached device is the right volume and is fully attached, then retry",
        offset,
    )


def raise_stopped(crew: Crew, device: Path) -> None:
    failure = crew.failure
    if failure is None:
        raise BackupCancelledError(f"backup of {device} was cancelled; nothing was committed to the pool")
    error, offset = failure.error, failure.offset
    if isinstance(error, DiskReadError):
        raise error
    where = f"at disk offset {offset} ({human_bytes(offset)})" if offset is not None else ""
    # Our own errors already say what to do; others get the generic advice.
    advice = (
        ""
        if isinstance(error, BingoBackupError)
        else "; check the device and the pool, then retry the backup (nothing was committed)"
    )
    raise DiskReadError(
        f"backup of {device} failed {where}: {type(error).__name__}: {error}{advice}", offset or 0
    ) from error
