"""Whole-file SHA-256, the checksum operators compare a restored disk with its source by."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from bingobackup.sparse import data_extents

_BLOCK = 1 << 20  # read and hashed while still in the core's L2 cache
_ZEROS = memoryview(bytes(_BLOCK))


def file_sha256(path: Path | str) -> str:
    """Hex SHA-256 of a file's bytes, holes hashed as the zeros they read as.

    A disk image is mostly holes: they are hashed from one block of zeros without being read,
    and data is read into one reused buffer. A fresh 4 MiB buffer per read cost a page fault
    per 4 KiB on a virtual machine: a 2 GiB disk holding 24 MiB took 1.8-7.7 s, now 1.3 s
    (what is left is SHA-256 over the zeros).
    """
    digest = hashlib.sha256()
    buffer = memoryview(bytearray(_BLOCK))
    fd = os.open(path, os.O_RDONLY)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # a block device: no size, no hole information
            _hash_range(digest, fd, buffer, 0, None, path)
            return digest.hexdigest()
        position = 0
        for start, length in data_extents(fd, 0, info.st_size):
            _hash_zeros(digest, start - position)
            _hash_range(digest, fd, buffer, start, length, path)
            position = start + length
        _hash_zeros(digest, info.st_size - position)
    finally:
        os.close(fd)
    return digest.hexdigest()


def _hash_zeros(digest: hashlib._Hash, length: int) -> None:
    while length > 0:
        piece = min(length, _BLOCK)
        digest.update(_ZEROS[:piece])
        length -= piece


def _hash_range(
    digest: hashlib._Hash, fd: int, buffer: memoryview, start: int, length: int | None, path: Path | str
) -> None:
    """`length` bytes from `start`; when `length` is None, whatever a sequential read gives
    until the end (a block device or a pipe, which cannot say their size)."""
    if length is None:
        while read := os.readv(fd, [buffer]):
            digest.update(buffer[:read])
        return
    position, end = start, start + length
    while position < end:
        read = os.preadv(fd, [buffer[: min(_BLOCK, end - position)]], position)
        if not read:
            raise OSError(f"{path} ended at byte {position} while it was hashed; was it being written?")
        digest.update(buffer[:read])
        position += read
