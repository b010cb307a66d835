"""A local store writes handed-over blobs (dedup packs) with direct I/O where it can, and
falls back to ordinary writes, without losing a byte, where the file system refuses it."""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
from pathlib import Path

import pytest

from bingobackup.storage import localdir
from bingobackup.storage.base import Buffer
from bingobackup.storage.localdir import DIRECT_IO_ALIGNMENT, LocalDirBlobStore
from bingobackup.storage.testing.faulty import fail_midway

pytestmark = pytest.mark.skipif(not getattr(os, "O_DIRECT", 0), reason="this system has no direct I/O")


def handed_over(store: LocalDirBlobStore, key: str, size: int) -> bytes:
    """Hands `store` a page-aligned blob of `size` bytes and an unaligned tail; flushes."""
    buffer = mmap.mmap(-1, size)
    payload = os.urandom(size)
    buffer[:] = payload
    store.put_soon(key, [memoryview(buffer), b"tail"], lambda: None)
    store.flush()
    return payload + b"tail"


class RecordingStore(LocalDirBlobStore):
    """Records whether each write ran with direct I/O; refuses direct writes when told to."""

    def __init__(self, root: Path, *, refuse_direct_writes: bool = False) -> None:
        super().__init__(root, "direct-test")
        self.refuse = refuse_direct_writes
        self.writes: list[bool] = []  # direct or not, per write call

    def _write_all(self, fd: int, parts: tuple[Buffer, ...]) -> None:
        direct = bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)
        self.writes.append(direct)
        if direct and self.refuse:
            fail_midway(fd, parts, errno.EINVAL)  # some of it went through
        super()._write_all(fd, parts)


def test_a_page_aligned_blob_goes_direct_and_only_its_unaligned_end_is_buffered(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "pool")
    expected = handed_over(store, "data/aa/pack", 3 * DIRECT_IO_ALIGNMENT)
    if not store._direct_io:
        pytest.skip(f"{tmp_path} is on a file system without direct I/O (tmpfs): the fallback tests cover it")
    assert store.writes == [True, False]
    assert store.get("data/aa/pack") == expected


def test_a_file_system_without_direct_io_gets_ordinary_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def no_direct_open(path: object, flags: int, *args: int) -> int:
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))  # as tmpfs answers
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(localdir.os, "open", no_direct_open)
    store = RecordingStore(tmp_path / "pool")
    first = handed_over(store, "data/aa/first", 2 * DIRECT_IO_ALIGNMENT)
    second = handed_over(store, "data/bb/second", 2 * DIRECT_IO_ALIGNMENT)
    assert store.writes == [False, False] and not store._direct_io
    assert store.get("data/aa/first") == first and store.get("data/bb/second") == second


def test_a_direct_write_refused_midway_is_written_again_buffered(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "pool", refuse_direct_writes=True)
    expected = handed_over(store, "data/aa/pack", 4 * DIRECT_IO_ALIGNMENT)
    assert store.writes == [True, False] and not store._direct_io
    assert store.get("data/aa/pack") == expected
    assert [p.name for p in (tmp_path / "pool").rglob("*") if p.is_file()] == ["pack"]
