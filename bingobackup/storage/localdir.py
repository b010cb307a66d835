"""A blob store in a local (or mounted network) directory: one file per blob."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import hashlib
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bingobackup.crashpoints import crash_point
from bingobackup.files import fsync_path, uncache
from bingobackup.processes import pid_gone, process_space
from bingobackup.storage.base import (
    BackgroundPuts,
    BlobData,
    BlobInfo,
    BlobStore,
    BlobWriter,
    Buffer,
    as_parts,
    check_key,
    frozen,
)
from bingobackup.storage.errors import BlobNotFoundError, PoolFullError

TEMP_PREFIX = ".tmp-"


@functools.cache
def _space_tag() -> str:
    """This host's process space (pools/locks.py), short enough for a file name."""
    return hashlib.sha256(process_space().encode()).hexdigest()[:8]


def _writer_tag() -> str:
    return f"{_space_tag()}.{os.getpid()}"  # per call: a forked child has its own id


_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


# put_soon: temp files written and waiting for their fsync at once (backpressure on writers),
# and the threads doing those fsyncs. Durable storage serves a couple of fsyncs at a time;
# more threads only queue in the filesystem's journal.
SYNC_QUEUE = 4
SYNC_THREADS = 2
# Direct I/O wants buffer address, length and file offset aligned to the device's logical
# block (512 or 4096 bytes); a page satisfies both. Not every system has it (macOS).
DIRECT_IO_ALIGNMENT = 4096
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)


class LocalDirBlobStore(BlobStore):
    """Blobs as files under `root`; keys map to relative paths. Thread-safe (rules in base.py)."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = Path(root)
        self.name = name
        self._known_dirs: set[Path] = set()
        self._unsynced_deletions: set[Path] = set()  # directories deleted from since the last sync
        self._direct_io = bool(_O_DIRECT)  # turned off for good when the file system refuses it
        self._dirs_lock = threading.Lock()
        self._background: BackgroundPuts | None = BackgroundPuts(
            f"sync-{name}", threads=SYNC_THREADS, queue=SYNC_QUEUE
        )

    def __repr__(self) -> str:
        return f"LocalDirBlobStore({str(self.root)!r})"

    # -- hooks a fault-injecting test store overrides -------------------------------------
    def _write_all(self, fd: int, parts: tuple[Buffer, ...]) -> None:
        for part in parts:
            view = memoryview(part).cast("B")
            while view:
                written = os.write(fd, view)
                view = view[written:]

    def _write_direct(self, fd: int, parts: tuple[Buffer, ...], direct_bytes: int) -> None:
        """Writes the first `direct_bytes` of `parts[0]` with direct I/O (DMA from the caller's
        buffer: no copy into the page cache, no writeback to do), then turns direct I/O off
        for the unaligned rest. A file system that refuses it midway gets the rest buffered."""
        head = memoryview(parts[0]).cast("B")
        try:
            self._write_all(fd, (head[:direct_bytes],))
            rest: tuple[Buffer, ...] = (head[direct_bytes:], *parts[1:])
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
            self._direct_io = False
            os.lseek(fd, 0, os.SEEK_SET)
            rest = parts
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~_O_DIRECT)
        self._write_all(fd, rest)

    def _sync_file(self, fd: int) -> None:
        os.fsync(fd)
        # Blobs are read back only at a restore, days later (measured on this project's
        # benchmark VM: a first backup's system time 2.5 s cached, 0.8 s dropped; files.py).
        uncache(fd)

    # -- helpers --------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _ensure_dir(self, directory: Path) -> None:
        if directory in self._known_dirs:
            return
        missing: list[Path] = []
        probe = directory
        while not probe.exists():
            missing.append(probe)
            probe = probe.parent
        for path in reversed(missing):
            path.mkdir(exist_ok=True)
            crash_point("store.dir-made")  # made, its entry in the parent not yet durable
            fsync_path(path.parent)  # the new directory entry itself must survive a crash
        with self._dirs_lock:
            self._known_dirs.add(directory)

    def _temp_path(self, final: Path) -> Path:
        # The writer's process (space and id) in the name: `remove_dead_temps` can tell a
        # killed writer's file from one being written.
        return final.parent / f"{TEMP_PREFIX}{final.name}-{_writer_tag()}-{uuid.uuid4().hex[:12]}"

    def remove_dead_temps(self) -> tuple[int, int]:
        """Deletes the temp files of writers of this host that died (SIGKILL, power loss):
        nothing else ever removes them. Those of other hosts, or of live or unknown
        writers, stay. Returns (files, bytes) removed."""
        ours, removed, freed = _space_tag(), 0, 0
        for directory, _, names in os.walk(self.root):
            for name in names:
                if not name.startswith(TEMP_PREFIX):
                    continue
                parts = name.rsplit("-", 2)  # .tmp-<blob name>, <space>.<pid>, <random>
                space, _, pid = parts[1].partition(".") if len(parts) == 3 else ("", "", "")
                if space != ours or not pid.isdigit() or not pid_gone(int(pid)):
                    continue
                path = Path(directory, name)
                try:
                    size = path.stat().st_size
                    path.unlink()
                except FileNotFoundError:
                    continue
                removed, freed = removed + 1, freed + size
        return removed, freed

    def _full_or_raise(self, error: OSError, needed: int) -> None:
        if error.errno in _FULL_ERRNOS:
            raise PoolFullError(self.name, needed, os.strerror(error.errno or 0)) from None
        raise error

    # -- BlobStore ------------------------------------------------------------------------
    def put(self, key: str, data: BlobData) -> None:
        final, parts, needed = self._prepare(key, data)
        self._finish_put(self._write_temp(final, parts, needed))

    def _start_put(
        self, key: str, data: BlobData, release: Callable[[], None] | None
    ) -> _PendingBlob | _HandedOverBlob:
        """Writes the temp file now; fsync, rename and the directory's fsync run on a sync
        thread, so the caller's core goes on compressing while storage catches up. A blob
        handed over (rule 9) is written there too, from the caller's buffer."""
        final, parts, needed = self._prepare(key, data)
        if release is None:
            return self._write_temp(final, frozen(parts), needed)
        return _HandedOverBlob(self, final, parts, needed, release)

    def _prepare(self, key: str, data: BlobData) -> tuple[Path, tuple[Buffer, ...], int]:
        parts = as_parts(data)
        return self._path(key), parts, sum(len(memoryview(p).cast("B")) for p in parts)

    def _write_temp(
        self, final: Path, parts: tuple[Buffer, ...], needed: int, *, direct: bool = False
    ) -> _PendingBlob:
        """`parts` written to a new temp file beside `final`, not yet fsynced; with `direct`,
        the page-aligned start of the first part bypasses the page cache (`_write_direct`)."""
        self._ensure_dir(final.parent)
        temp = self._temp_path(final)
        direct_bytes = _direct_bytes(parts[0]) if direct and self._direct_io and parts else 0
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            try:
                fd = os.open(temp, flags | (_O_DIRECT if direct_bytes else 0), 0o644)
            except OSError as error:
                if not direct_bytes or error.errno != errno.EINVAL:
                    raise
                self._direct_io, direct_bytes = False, 0  # the file system has none (tmpfs)
                fd = os.open(temp, flags, 0o644)
        except OSError as error:
            self._full_or_raise(error, needed)
        try:
            if direct_bytes:
                self._write_direct(fd, parts, direct_bytes)
            else:
                self._write_all(fd, parts)
        except OSError as error:
            os.close(fd)
            temp.unlink(missing_ok=True)
            self._full_or_raise(error, needed)
        crash_point("store.temp-written")  # in the page cache only: what a power loss loses
        return _PendingBlob(self, fd, temp, final, parts, needed)

    def _finish_put(self, blob: _PendingBlob) -> None:
        """fsync, close, rename, fsync the directory: the blob is durable and visible."""
        try:
            try:
                self._sync_file(blob.fd)
            finally:
                os.close(blob.fd)
            crash_point("store.synced")  # the temp file's bytes durable, not yet renamed
            os.replace(blob.temp, blob.final)
        except OSError as error:
            blob.temp.unlink(missing_ok=True)
            self._full_or_raise(error, blob.needed)
        crash_point("store.renamed")  # visible, but its directory entry not yet durable
        fsync_path(blob.final.parent)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            with self._path(key).open("rb") as handle:
                if offset:
                    handle.seek(offset)
                return handle.read() if length is None else handle.read(length)
        except FileNotFoundError:
            raise BlobNotFoundError(self.name, key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def stat(self, key: str) -> BlobInfo:
        try:
            return BlobInfo(key, self._path(key).stat().st_size)
        except FileNotFoundError:
            raise BlobNotFoundError(self.name, key) from None

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        directory = prefix.rpartition("/")[0]
        start = self.root / directory if directory else self.root
        yield from (info for info in self._walk(start, directory) if info.key.startswith(prefix))

    def _walk(self, directory: Path, key_prefix: str) -> Iterator[BlobInfo]:
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.name.startswith(TEMP_PREFIX):
                continue
            key = f"{key_prefix}/{entry.name}" if key_prefix else entry.name
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path), key)
            elif entry.is_file(follow_symlinks=False):
                try:
                    yield BlobInfo(key, entry.stat().st_size)
                except FileNotFoundError:
                    continue  # deleted while we listed

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            raise BlobNotFoundError(self.name, key) from None
        with self._dirs_lock:
            self._unsynced_deletions.add(path.parent)
        crash_point("store.unlinked")  # gone, its directory not fsynced: a power loss brings it back

    def sync_deletions(self) -> None:
        with self._dirs_lock:
            directories, self._unsynced_deletions = self._unsynced_deletions, set()
        for directory in sorted(directories):
            with contextlib.suppress(FileNotFoundError):  # removed meanwhile: nothing left to bring back
                fsync_path(directory)

    def open_append(self, key: str) -> BlobWriter:
        final = self._path(key)
        self._ensure_dir(final.parent)
        return _LocalBlobWriter(self, final)


class _LocalBlobWriter(BlobWriter):
    def __init__(self, store: LocalDirBlobStore, final: Path) -> None:
        self._store = store
        self._final = final
        self._temp = store._temp_path(final)
        self._fd: int | None = os.open(self._temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._size = 0
        self._durable = 0

    @property
    def size(self) -> int:
        return self._size

    def _open_fd(self) -> int:
        if self._fd is None:
            raise ValueError(f"the writer of {self._final.name} is already committed or aborted")
        return self._fd

    def write(self, data: BlobData) -> int:
        fd = self._open_fd()
        parts = as_parts(data)
        length = sum(len(memoryview(p).cast("B")) for p in parts)
        offset = self._size
        try:
            self._store._write_all(fd, parts)
        except OSError as error:
            # A full pool ends the blob; after another error (a lost link) the owner may
            # `rewind` and go on, or abort.
            if error.errno in _FULL_ERRNOS:
                self.abort()
            self._store._full_or_raise(error, length)
        self._size += length
        return offset

    def sync(self) -> None:
        self._store._sync_file(self._open_fd())
        self._durable = self._size

    def rewind(self, size: int) -> int:
        if not self._durable <= size <= self._size:
            raise ValueError(f"cannot rewind {self._final.name} to byte {size}: {self._durable} are durable")
        fd = self._open_fd()
        os.ftruncate(fd, size)  # the failed write's partial bytes go too
        os.lseek(fd, size, os.SEEK_SET)
        self._size = size
        return size

    def commit(self) -> None:
        fd = self._open_fd()
        try:
            self._store._sync_file(fd)
            os.close(fd)
            self._fd = None
            os.replace(self._temp, self._final)
        except OSError as error:
            self.abort()
            self._store._full_or_raise(error, 0)
        fsync_path(self._final.parent)

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._temp.unlink(missing_ok=True)


@dataclass
class _PendingBlob:
    store: LocalDirBlobStore
    fd: int
    temp: Path
    final: Path
    parts: tuple[Buffer, ...]  # kept until durable: a failed fsync is redone from them
    needed: int

    def finish(self) -> None:
        self.store._finish_put(self)

    def redo(self) -> None:
        self.store._finish_put(self.store._write_temp(self.final, self.parts, self.needed))


@dataclass
class _HandedOverBlob:
    """A blob handed over by `put_soon(..., release=...)`: written, fsynced and renamed on a
    sync thread straight from the caller's buffer, which goes back to the caller once durable."""

    store: LocalDirBlobStore
    final: Path
    parts: tuple[Buffer, ...]
    needed: int
    release: Callable[[], None]

    def finish(self) -> None:
        self.store._finish_put(self.store._write_temp(self.final, self.parts, self.needed, direct=True))
        self.release()

    redo = finish


def _direct_bytes(part: Buffer) -> int:
    """How much of `part` direct I/O can write from where it lies: its length rounded down to
    whole pages when it starts on a page boundary (an `mmap` does), else 0."""
    if not _O_DIRECT:
        return 0
    view = memoryview(part).cast("B")
    if view.readonly or len(view) < DIRECT_IO_ALIGNMENT:
        return 0  # ctypes can only take the address of a writable buffer
    address = ctypes.addressof(ctypes.c_char.from_buffer(view))
    if address % DIRECT_IO_ALIGNMENT:
        return 0
    return len(view) - len(view) % DIRECT_IO_ALIGNMENT
