"""Sparse-file helpers: holes are found, kept when copying, and cost no space."""

from __future__ import annotations

import os
from pathlib import Path

from support.sim import write_sparse_image

from bingobackup.checksums import file_sha256 as sha256
from bingobackup.sparse import allocated_bytes, copy_sparse, data_extents

MIB = 1 << 20


def _image(tmp_path: Path) -> Path:
    return write_sparse_image(
        tmp_path / "disk.raw",
        64 * MIB,
        {0: b"\x01" * 4096, 8 * MIB: os.urandom(2 * MIB), 40 * MIB: b"tail" * 1024},
    )


def test_data_extents_skip_holes(tmp_path: Path) -> None:
    image = _image(tmp_path)

    extents = list(data_extents(image))

    assert extents == [(0, 4096), (8 * MIB, 2 * MIB), (40 * MIB, 4096)]
    # A window is clipped to [start, end); an fd works like a path.
    fd = os.open(image, os.O_RDONLY)
    try:
        assert list(data_extents(fd, 9 * MIB, 40 * MIB + 100)) == [(9 * MIB, MIB), (40 * MIB, 100)]
    finally:
        os.close(fd)
    assert list(data_extents(image, 41 * MIB)) == []


def test_copy_sparse_keeps_bytes_and_holes(tmp_path: Path) -> None:
    image = _image(tmp_path)
    copy = tmp_path / "copy.raw"

    copy_sparse(image, copy)

    assert copy.stat().st_size == image.stat().st_size
    assert sha256(copy) == sha256(image)
    assert allocated_bytes(copy) <= 4 * MIB, "holes were filled in"
