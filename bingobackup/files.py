"""File helpers: small files replaced whole, paths fsynced, bulk output kept out of the page cache."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from pathlib import Path

Buffer = bytes | bytearray | memoryview
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # the host filesystem under a medium's files is full


def replace_file(target: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to a temp file beside `target`, fsync it, then rename it over `target`.

    The temp name is this process's and thread's own, so commands (or threads) replacing the
    same file at once each rename a whole file of their own; the last rename wins. A secret
    gets `mode=0o600`: the file is never readable by others, not even for a moment.
    """
    temp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def fsync_path(path: str | os.PathLike[str]) -> None:
    """fsync the file or directory at `path`: a directory, so the entries renamed or created in
    it survive a crash; a file some other code wrote and closed."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def uncache(fd: int) -> None:
    """Drop the file's clean pages from the page cache (dirty pages stay until written back).

    For bulk output nobody reads soon after: a pool's blobs, a restored disk. Kept cached, it
    crowds out what the host does use; dropped as it becomes durable, its pages are the ones
    the next write fills, where fresh memory can cost much more (on a virtual machine whose
    host takes freed guest memory back, a fault on the host per page). Only a hint: a no-op
    where the system has no posix_fadvise, and a file system that refuses it fails nothing.
    """
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def write_fully(fd: int, data: Buffer, offset: int) -> None:
    """Writes all of `data` at `offset` (a write may be short): the one place the files of
    emulated cartridges and staged discs are written, so tests inject a full disk here."""
    view = memoryview(data).cast("B")
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written
