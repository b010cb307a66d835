"""Generated disk content: deterministic, sparse, and a realistic mix."""

from __future__ import annotations

import os
import time
from pathlib import Path

import zstandard
from support.sim import sparse_digest

from bingobackup.sim.content import write_disk_image
from bingobackup.sparse import allocated_bytes, data_extents

MIB = 1 << 20
GIB = 1 << 30


def test_same_seed_same_bytes_and_holes_stay_holes(tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in ("a.raw", "b.raw", "c.raw"))

    written = write_disk_image(a, 4 * GIB, "vm-1", data_fraction=0.004)
    write_disk_image(b, 4 * GIB, "vm-1", data_fraction=0.004)
    write_disk_image(c, 4 * GIB, "vm-2", data_fraction=0.004)

    assert sparse_digest(a) == sparse_digest(b) != sparse_digest(c)
    assert a.stat().st_size == 4 * GIB
    assert 8 * MIB <= written <= 0.004 * 4 * GIB
    assert allocated_bytes(a) < written + 8 * MIB, "the image should be sparse"
    extents = list(data_extents(a))
    assert len(extents) > 3 and extents[0][0] == 0, "data is spread over the disk, header first"
    assert extents[-1][0] > GIB, "data reaches far into the disk"


def test_mix_is_partly_compressible_and_generation_is_fast(tmp_path: Path) -> None:
    image = tmp_path / "bench.raw"

    started = time.monotonic()
    written = write_disk_image(image, 1 * GIB, 7, data_fraction=0.25)
    seconds = time.monotonic() - started

    with image.open("rb") as f:
        data = b"".join(os.pread(f.fileno(), n, o) for o, n in data_extents(image))
    ratio = len(data) / len(zstandard.ZstdCompressor(level=1).compress(data))
    # Text and repeated blocks compress, random data does not: somewhere in between.
    assert 1.3 < ratio < 20, ratio
    # ≥ 300 MB/s is the target; the bound leaves room for a loaded CI machine.
    assert written / seconds > 100e6, f"{written / seconds / 1e6:.0f} MB/s"
