"""The benchmark disk image: deterministic, realistic, mostly data; and the churn step.

A well-used VM disk rather than a fresh one: about 70 % of it holds data, in runs of 16-80
MiB separated by holes of 6-34 MiB (never-written space) at 4 KiB-aligned, chunk-unaligned
offsets. The data itself comes from the simulator's generator (`bingobackup.sim.content`):
log-like text, incompressible media/archives, blocks shared by every disk at unaligned
offsets, and runs of written zeros (10 %) that a backup must read to find out they are zero.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import blake3
from pydantic import BaseModel

from bingobackup.format.zero import is_zero
from bingobackup.sim.content import ContentMix, write_disk_image

MIB = 1 << 20
GIB = 1 << 30
DATA_FRACTION = 0.70
REGION = 4 * MIB  # churn unit: one default-size chunk
MIX = ContentMix(text=0.40, random=0.30, repeated=0.20, zeros=0.10)
DATA_RUN_MIB = (16, 80)
HOLE_RUN_MIB = (6, 34)  # mean hole 20 MiB : mean data run 48 MiB, so ~30 % holes


class ImageInfo(BaseModel):
    path: Path
    size_bytes: int
    data_bytes: int  # bytes written (including written zeros)
    nonzero_bytes: int  # bytes in 4 MiB regions that are not all zero: what must be hashed and stored


def scan_nonzero(path: Path, region: int = REGION) -> tuple[int, list[int]]:
    """(bytes in non-zero regions, their offsets): what a backup must hash."""
    size = path.stat().st_size
    offsets: list[int] = []
    nonzero = 0
    with open(path, "rb", buffering=0) as f:
        for offset in range(0, size, region):
            data = os.pread(f.fileno(), region, offset)
            if not is_zero(data):
                offsets.append(offset)
                nonzero += len(data)
    return nonzero, offsets


def build_image(path: Path, size_bytes: int, seed: str = "bench") -> ImageInfo:
    """Write the image (same size and seed → same bytes) and measure its non-zero data."""
    dense = path.with_name(path.name + ".dense")
    budget = int(size_bytes * DATA_FRACTION)
    try:
        write_disk_image(dense, budget, seed, data_fraction=1.0, mix=MIX)
        written = _lay_out(dense, path, size_bytes, budget, random.Random(f"{seed}:layout"))
    finally:
        dense.unlink(missing_ok=True)
    nonzero, _ = scan_nonzero(path)
    return ImageInfo(path=path, size_bytes=size_bytes, data_bytes=written, nonzero_bytes=nonzero)


def _lay_out(dense: Path, path: Path, size_bytes: int, budget: int, rng: random.Random) -> int:
    """Copy the dense data into `path` in runs separated by holes; returns the bytes copied."""
    source = os.open(dense, os.O_RDONLY)
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(target, size_bytes)
        position = copied = 0
        while position < size_bytes and copied < budget:
            run = rng.randint(*DATA_RUN_MIB) * MIB + rng.randrange(256) * 4096
            length = min(run, size_bytes - position, budget - copied)
            done = 0
            while done < length:
                done += os.copy_file_range(source, target, length - done, copied + done, position + done)
            position += length + rng.randint(*HOLE_RUN_MIB) * MIB + rng.randrange(256) * 4096
            copied += length
        os.fsync(target)
    finally:
        os.close(source)
        os.close(target)
    return copied


def churn(path: Path, fraction: float = 0.05, seed: str = "bench-churn") -> int:
    """Rewrite `fraction` of the image's data-holding 4 MiB regions in place; returns bytes rewritten.

    Each chosen region gets new content in full (half of them log-like text, half
    incompressible), the way a VM's day of writes lands on a disk: same size, same layout.
    """
    _, offsets = scan_nonzero(path)
    rng = random.Random(seed)
    chosen = sorted(rng.sample(offsets, max(1, round(len(offsets) * fraction)))) if offsets else []
    size = path.stat().st_size
    rewritten = 0
    fd = os.open(path, os.O_WRONLY)
    try:
        for index, offset in enumerate(chosen):
            length = min(REGION, size - offset)
            fresh = blake3.blake3(f"{seed}:{offset}".encode()).digest(length=length)
            if index % 2:
                stamp = f"{seed} {offset} churned log line: request accepted status 200\n".encode()
                fresh = (stamp * (length // len(stamp) + 1))[:length]
            os.pwrite(fd, fresh, offset)
            rewritten += length
        os.fsync(fd)
    finally:
        os.close(fd)
    return rewritten
