"""file_sha256 is the SHA-256 of every byte of the file, holes included as zeros, whatever the
layout of data and holes (it hashes holes without reading them)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from bingobackup.checksums import file_sha256

MIB = 1 << 20


@pytest.mark.parametrize(
    ("writes", "size"),
    [
        ([], 0),
        ([(0, b"x")], 1),
        ([], 3 * MIB + 5),  # all hole
        ([(5 * MIB, os.urandom(12345))], None),  # hole, then data to the end
        ([(0, os.urandom(2 * MIB + 7)), (9 * MIB, b"y" * 4097)], 13 * MIB),  # data, hole, data, hole
    ],
    ids=["empty", "one byte", "all hole", "hole then data", "data and holes"],
)
def test_file_sha256_equals_the_hash_of_every_byte(
    tmp_path: Path, writes: list[tuple[int, bytes]], size: int | None
) -> None:
    path = tmp_path / "disk.raw"
    with path.open("wb") as f:
        for offset, data in writes:
            f.seek(offset)
            f.write(data)
        if size is not None:
            f.truncate(size)
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_block_device_like_file_without_size_is_read_to_its_end(tmp_path: Path) -> None:
    fifo = tmp_path / "device"
    os.mkfifo(fifo)  # not a regular file: no size and no hole information, as a block device
    data = os.urandom(3 * MIB + 11)
    writer = threading.Thread(target=fifo.write_bytes, args=(data,))
    writer.start()
    try:
        assert file_sha256(fifo) == hashlib.sha256(data).hexdigest()
    finally:
        writer.join()
