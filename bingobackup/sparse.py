"""Sparse files: where the data is, copying without filling holes, what is really allocated.

Used by the simulator (volumes and snapshots are sparse raw files) and by the data mover
(a hole is read as nothing, never as megabytes of zeros).
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

# FICLONE from linux/fs.h: _IOW(0x94, 9, int). Not exported by Python's fcntl module.
FICLONE = 0x40049409
_COPY_BLOCK = 8 << 20

PathOrFd = int | str | os.PathLike[str]


def _open(target: PathOrFd) -> tuple[int, bool]:
    """(fd, whether we opened it and must close it)."""
    if isinstance(target, int):
        return target, False
    return os.open(target, os.O_RDONLY), True


def data_extents(target: PathOrFd, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int]]:
    """(offset, length) of every data extent within [start, end), in order.

    Holes are skipped. A filesystem without SEEK_DATA/SEEK_HOLE support reports the whole
    range as one extent, which is always correct, only slower to read.
    """
    fd, owned = _open(target)
    try:
        size = os.fstat(fd).st_size
        # A block device has st_size 0; the caller's `end` is then the only bound we know.
        stop = size if end is None else (min(end, size) if size else end)
        if not size and end is None:
            return
        yield from _extents(fd, start, stop)
    finally:
        if owned:
            os.close(fd)


def _extents(fd: int, start: int, stop: int) -> Iterator[tuple[int, int]]:
    position = start
    while position < stop:
        try:
            data = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data after `position`: the rest is a hole
                return
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                yield position, stop - position
                return
            raise
        if data >= stop:
            return
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), stop)
        yield data, hole - data
        position = hole


def allocated_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes the filesystem really allocated for `path` (holes cost nothing)."""
    return os.stat(path).st_blocks * 512


def _try_reflink(src_fd: int, dst_fd: int) -> bool:
    try:
        fcntl.ioctl(dst_fd, FICLONE, src_fd)
    except OSError:
        return False
    return True


def _copy_range(src_fd: int, dst_fd: int, offset: int, length: int) -> None:
    remaining = length
    position = offset
    use_kernel = hasattr(os, "copy_file_range")
    while remaining > 0:
        step = min(remaining, _COPY_BLOCK)
        copied = 0
        if use_kernel:
            try:
                copied = os.copy_file_range(src_fd, dst_fd, step, position, position)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                use_kernel = False
        if not copied:
            block = os.pread(src_fd, step, position)
            if not block:
                raise OSError(errno.EIO, f"source ended at byte {position} while copying", None)
            copied = os.pwrite(dst_fd, block, position)
        position += copied
        remaining -= copied


def copy_sparse(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Copy `src` to `dst` (replaced), keeping holes: a reflink when the filesystem can,
    otherwise only the data extents, then the file is truncated to the source's size."""
    src_fd = os.open(src, os.O_RDONLY)
    try:
        size = os.fstat(src_fd).st_size
        dst_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if not _try_reflink(src_fd, dst_fd):
                for offset, length in _extents(src_fd, 0, size):
                    _copy_range(src_fd, dst_fd, offset, length)
                os.ftruncate(dst_fd, size)
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)


def create_sparse_file(path: str | os.PathLike[str], size_bytes: int) -> None:
    """A file of `size_bytes` that is one hole (allocates nothing)."""
    with Path(path).open("wb") as f:
        f.truncate(size_bytes)
