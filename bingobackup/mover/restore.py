"""Write a backed-up disk back out: to a sparse raw image file or onto an attached device.

`channels + 2` threads each take the next chunk of the manifest, read and verify it from the
pool and write it at its offset, so memory stays at a few chunk buffers per thread. Two more
threads than channels, because a thread waiting on the pool or on the target's write lock
would otherwise leave a core idle. A flusher writes the target back while the restore runs
(flusher.py), so the final fsync does not wait for the whole disk. Regions absent
from the manifest (holes and all-zero chunks at backup time) are left as holes in a new file,
or left untouched on a device (restore targets are new, zeroed volumes); with
`create_sparse=False` they are written out as zeros instead.

A new file is written under a temporary name next to the target and renamed only when every
chunk was written and fsynced, so a failed export never leaves a plausible-looking image.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from bingobackup.crashpoints import crash_point
from bingobackup.errors import BingoBackupError
from bingobackup.files import fsync_path, uncache
from bingobackup.format.errors import CorruptChunkError
from bingobackup.format.manifest import ChunkRef, DiskManifest
from bingobackup.format.zero import is_zero
from bingobackup.mover.chunks import ProgressThrottle, chunk_spans, human_bytes
from bingobackup.mover.crew import Crew, Failure
from bingobackup.mover.errors import MoverError, RestoreChunkError
from bingobackup.mover.flusher import Flusher
from bingobackup.mover.memory import keep_freed_buffers
from bingobackup.mover.ratelimit import RateLimiter
from bingobackup.processes import pid_gone


class ChunkSource(Protocol):
    """What the mover needs from a pool to read chunks back (thread-safe)."""

    def read_chunk(self, ref: ChunkRef) -> bytes:
        """The chunk's plaintext, verified against `ref.digest`; raises when missing or corrupt."""
        ...


class DiskRestoreResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    bytes_written: int
    zero_bytes: int
    hole_bytes: int
    seconds: float


def workers_for(channels: int) -> int:
    """Threads that read, verify and write chunks: two more than the channels, so that while
    some wait on the pool or on the target's write lock, the others keep every core decoding."""
    return channels + 2


def _is_block_device(path: Path) -> bool:
    try:
        return stat.S_ISBLK(path.stat().st_mode)
    except FileNotFoundError:
        return False


def _device_size(fd: int) -> int:
    return os.lseek(fd, 0, os.SEEK_END)


def _write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


# A chunk holding a little data among zero runs is written block by block, skipping the zero
# blocks, so a disk's holes stay holes at this granularity rather than at the chunk size.
SPARSE_BLOCK = 64 << 10


def _write_sparse(fd: int, data: bytes, offset: int) -> int:
    """Write the non-zero SPARSE_BLOCK-sized blocks of `data`; returns the bytes written."""
    view, written, start = memoryview(data), 0, None
    for position in range(0, len(data), SPARSE_BLOCK):
        zero = is_zero(view[position : position + SPARSE_BLOCK])
        if not zero and start is None:
            start = position
        elif zero and start is not None:
            _write_all(fd, view[start:position], offset + start)
            written += position - start
            start = None
    if start is not None:
        _write_all(fd, view[start:], offset + start)
        written += len(data) - start
    return written


def _gaps(manifest: DiskManifest) -> list[tuple[int, int]]:
    """(offset, length) of the disk regions no chunk covers."""
    gaps, position = [], 0
    for ref in sorted(manifest.chunks, key=lambda r: r.offset):
        if ref.offset > position:
            gaps.append((position, ref.offset - position))
        position = max(position, ref.offset + ref.length)
    if position < manifest.size_bytes:
        gaps.append((position, manifest.size_bytes - position))
    return gaps


_ADVICE = (
    "restore this disk from a backup set that does not hold this chunk, and check the pool's storage "
    "for errors"
)


def _chunk_error(
    label: str, ref: ChunkRef, error: BaseException | None, reason: str = ""
) -> RestoreChunkError:
    who = f"{label} " if label else ""
    where = (
        f"{who}chunk at disk offset {ref.offset} ({human_bytes(ref.offset)}, {ref.length} bytes, "
        f"digest {ref.digest})"
    )
    if isinstance(error, CorruptChunkError):
        message = f"{where} is damaged: {error.reason}. This region of the backup is lost: {_ADVICE}"
    elif isinstance(error, BingoBackupError):
        message = f"{where} could not be read back: {error}"  # the pool's message says what to do
    elif error is not None:
        message = f"{where} could not be read back ({type(error).__name__}: {error}); {_ADVICE}"
    else:
        message = f"{where} {reason}; {_ADVICE}"
    return RestoreChunkError(message, ref.offset, ref.digest)


def write_disk_from_pool(
    source: ChunkSource,
    manifest: DiskManifest,
    output_path_or_device: Path | str,
    *,
    channels: int = 2,
    write_limiter: RateLimiter | None = None,
    progress: Callable[[int, int], None] | None = None,
    create_sparse: bool = True,
    label: str = "",
    cancel: threading.Event | None = None,
) -> DiskRestoreResult:
    """Write the disk described by `manifest` to a file (sparse) or an existing block device."""
    if channels < 1:
        raise ValueError("channels must be at least 1")
    target = Path(output_path_or_device)
    started = time.monotonic()
    on_device = _is_block_device(target)
    fd, written_path = _open_target(target, manifest, label, on_device)

    keep_freed_buffers()
    crew = Crew(f"restore-{manifest.volume_id}", cancel)
    flusher = Flusher(fd, crew)
    writer = _ChunkWriter(source, manifest, fd, crew, flusher, write_limiter, create_sparse, label)
    gap_bytes = sum(length for _, length in _gaps(manifest))
    try:
        flusher.start()
        for index in range(workers_for(channels)):
            crew.start(f"channel-{index}", writer.work_loop)
        throttle = ProgressThrottle(progress, manifest.size_bytes, time.monotonic)
        crew.join(on_tick=lambda: throttle.report(writer.totals["done"]))
        _finish_writing(fd, crew, flusher, manifest, write_limiter, create_sparse)
    finally:
        flusher.stop()
        os.close(fd)
    _keep_or_discard(crew, target, written_path, on_device, label or manifest.volume_id)
    throttle.report(manifest.size_bytes, final=True)
    return DiskRestoreResult(
        bytes_written=writer.totals["written"] + (0 if create_sparse else gap_bytes),
        zero_bytes=writer.totals["zero"],
        hole_bytes=gap_bytes if create_sparse else 0,
        seconds=time.monotonic() - started,
    )


def _open_target(target: Path, manifest: DiskManifest, label: str, on_device: bool) -> tuple[int, Path]:
    """Open the device (checked to be large enough) or a new partial file beside `target`
    sized to the disk; returns the descriptor and the path being written."""
    if on_device:
        fd = os.open(target, os.O_WRONLY)
        if _device_size(fd) < manifest.size_bytes:
            size = _device_size(fd)
            os.close(fd)
            raise MoverError(
                f"{target} holds {size} bytes but the backed-up disk {label or manifest.volume_id} "
                f"needs {manifest.size_bytes}; attach a volume at least that large and retry"
            )
        return fd, target
    _remove_dead_partials(target)
    written_path = target.with_name(f"{_partial_prefix(target)}{os.getpid()}")
    fd = os.open(written_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.ftruncate(fd, manifest.size_bytes)
    return fd, written_path


class _ChunkWriter:
    """What the channel threads share: the chunks still to take, in offset order, and the
    byte totals, both guarded by one lock."""

    def __init__(
        self,
        source: ChunkSource,
        manifest: DiskManifest,
        fd: int,
        crew: Crew,
        flusher: Flusher,
        write_limiter: RateLimiter | None,
        create_sparse: bool,
        label: str,
    ) -> None:
        self.source, self.fd, self.crew, self.flusher = source, fd, crew, flusher
        self.write_limiter, self.create_sparse, self.label = write_limiter, create_sparse, label
        self.lock = threading.Lock()
        self.totals = {"written": 0, "zero": 0, "done": 0}
        self.refs = iter(sorted(manifest.chunks, key=lambda r: r.offset))

    def write_chunk(self, ref: ChunkRef) -> None:
        try:
            data = self.source.read_chunk(ref)
        except Exception as error:  # any pool failure here means this chunk is unusable
            raise _chunk_error(self.label, ref, error) from error
        if len(data) != ref.length:
            raise _chunk_error(
                self.label, ref, None, f"came back with {len(data)} bytes instead of {ref.length}"
            )
        if self.create_sparse and is_zero(data):
            with self.lock:
                self.totals["zero"] += ref.length
            return
        if self.write_limiter is not None:
            self.write_limiter.acquire(ref.length, self.crew.should_stop)
        if self.create_sparse:
            _write_sparse(self.fd, data, ref.offset)
        else:
            _write_all(self.fd, data, ref.offset)
        self.flusher.wrote(ref.length)
        with self.lock:
            self.totals["written"] += ref.length
        crash_point("restore.chunk-written")

    def work_loop(self) -> None:
        while not self.crew.should_stop():
            with self.lock:
                ref = next(self.refs, None)
            if ref is None:
                return
            self.crew.working_on(ref.offset)
            self.write_chunk(ref)
            with self.lock:
                self.totals["done"] += ref.length


def _finish_writing(
    fd: int,
    crew: Crew,
    flusher: Flusher,
    manifest: DiskManifest,
    write_limiter: RateLimiter | None,
    create_sparse: bool,
) -> None:
    """After the channels: zeros over the gaps (when not sparse), then fsync, unless the crew
    failed or was cancelled; a write error here becomes the crew's failure."""
    try:
        if crew.failure is None and not crew.cancelled and not create_sparse:
            _fill_zeros(fd, manifest, write_limiter)
        flusher.stop()
        if crew.failure is None and not crew.cancelled:
            os.fsync(fd)
            uncache(fd)
    except OSError as error:  # a full target, or the write-back of the tail failed
        crew.fail(error)


def _keep_or_discard(crew: Crew, target: Path, written_path: Path, on_device: bool, what: str) -> None:
    """Rename a complete file into place; remove a partial one and raise on failure or cancel."""
    if crew.failure is not None or crew.cancelled:
        if not on_device:
            written_path.unlink(missing_ok=True)
        if crew.failure is not None:
            _raise_failure(crew.failure, what, target, on_device)
        raise MoverError(f"restore of {what} to {target} was cancelled")
    if not on_device:
        os.replace(written_path, target)
        fsync_path(target.parent)


def _partial_prefix(target: Path) -> str:
    return f".{target.name}.partial-"


def _remove_dead_partials(target: Path) -> None:
    """Removes the partial files of restores to `target` whose process is gone (killed, or
    its host rebooted): nothing else removes them, and each holds up to a disk's bytes."""
    prefix = _partial_prefix(target)
    for partial in target.parent.glob(f"{prefix}*"):
        pid = partial.name.removeprefix(prefix)
        if not pid.isdigit() or not pid_gone(int(pid)):
            continue  # another restore to the same file is running: leave its file alone
        partial.unlink(missing_ok=True)


def _raise_failure(failure: Failure, what: str, target: Path, on_device: bool) -> None:
    if isinstance(failure.error, MoverError):
        raise failure.error
    where = f" at disk offset {failure.offset}" if failure.offset is not None else ""
    cleanup = "the device holds a partial restore" if on_device else "the partial file was removed"
    raise MoverError(
        f"restore of {what} to {target} failed{where}: {type(failure.error).__name__}: {failure.error}; "
        f"{cleanup}. Check that the target has room and is writable, then retry"
    ) from failure.error


def _fill_zeros(fd: int, manifest: DiskManifest, limiter: RateLimiter | None) -> None:
    """Write explicit zeros over the regions no chunk covers (a fully allocated image)."""
    zeros = bytes(manifest.chunk_size)
    for offset, length in _gaps(manifest):
        for start in chunk_spans(length, manifest.chunk_size):
            piece = min(manifest.chunk_size, length - start)
            if limiter is not None:
                limiter.acquire(piece)
            _write_all(fd, memoryview(zeros)[:piece], offset + start)
