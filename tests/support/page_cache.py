"""Which of a file's pages are in the page cache (mincore), for tests of `files.uncache`."""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path

import pytest

PAGE = mmap.PAGESIZE

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]


def cached_pages(path: Path) -> int:
    """How many of the file's pages are in the page cache (mincore on a mapping that is never touched)."""
    size = path.stat().st_size
    fd = os.open(path, os.O_RDONLY)
    try:
        address = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed")
        try:
            pages = -(-size // PAGE)
            vector = ctypes.create_string_buffer(pages)
            if _libc.mincore(address, size, vector) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
            return sum(byte & 1 for byte in vector.raw)
        finally:
            _libc.munmap(address, size)
    finally:
        os.close(fd)


def filesystem_type(path: Path) -> str:
    best, kind = "", ""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, mount_point, fs_type, *_ = line.split()
        if str(path).startswith(mount_point) and len(mount_point) > len(best):
            best, kind = mount_point, fs_type
    return kind


def require_droppable_cache(directory: Path) -> None:
    """Skip where dropping the page cache cannot apply (no posix_fadvise, or tmpfs)."""
    if not hasattr(os, "posix_fadvise") or not Path("/proc/self/mounts").exists():
        pytest.skip("the page cache is dropped through posix_fadvise on Linux only")
    if filesystem_type(directory) == "tmpfs":
        pytest.skip("on tmpfs the page cache is the storage: there is nothing to drop")
