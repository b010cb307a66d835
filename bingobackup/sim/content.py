"""Deterministic, realistic disk content for simulated volumes and benchmark images.

A real disk is mostly never-written space (holes in a sparse image) with data scattered in
extents: text (configs, logs, source: compresses well), incompressible data (media,
archives, encrypted), and blocks that recur across files and across VMs (the same OS files
everywhere: what dedup finds), often at offsets that are not chunk-aligned. The same
(size, seed, mix) always gives the same bytes, so tests can compare digests.
"""

from __future__ import annotations

import functools
import os
import random
from pathlib import Path

import blake3
from pydantic import BaseModel, Field

KIB = 1 << 10
MIB = 1 << 20
_BLOCK = 4 * KIB
_SHARED_SEED = "bingobackup-shared-os-files"  # the same for every disk: cross-VM duplicates


class ContentMix(BaseModel):
    """Relative weights of the kinds of data extents (they need not sum to 1)."""

    text: float = Field(0.45, ge=0)
    random: float = Field(0.30, ge=0)
    repeated: float = Field(0.20, ge=0)
    zeros: float = Field(0.05, ge=0, description="zero-filled data written out (not holes)")
    min_extent: int = Field(64 * KIB, gt=0)
    max_extent: int = Field(4 * MIB, gt=0)


_WORDS = [
    "kernel",
    "systemd",
    "sshd",
    "nginx",
    "info",
    "warn",
    "error",
    "debug",
    "user",
    "root",
    "session",
    "started",
    "stopped",
    "connection",
    "accepted",
    "closed",
    "timeout",
    "config",
    "value",
    "enable",
    "disable",
    "true",
    "false",
    "path",
    "/etc",
    "/var/log",
    "/usr/lib",
    "/home",
    "request",
    "response",
    "status",
    "200",
    "404",
    "500",
    "GET",
    "POST",
    "backup",
    "volume",
    "snapshot",
    "cluster",
    "node",
    "storage",
    "network",
    "interface",
    "address",
    "mac",
]


@functools.lru_cache(maxsize=1)
def _text_block() -> bytes:
    """1 MiB of log-like lines, built once per process (tiled to fill text extents)."""
    rng = random.Random("bingobackup-text")
    lines: list[str] = []
    size = 0
    while size < MIB:
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 14)))
        line = (
            f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00 {words}\n"
        )
        lines.append(line)
        size += len(line)
    return "".join(lines).encode()[:MIB]


@functools.lru_cache(maxsize=1)
def _shared_blocks() -> tuple[bytes, ...]:
    """64 blocks of 64 KiB that every disk shares (think: the same libc on every VM)."""
    return tuple(blake3.blake3(f"{_SHARED_SEED}:{i}".encode()).digest(length=64 * KIB) for i in range(64))


def _text(rng: random.Random, length: int) -> bytes:
    block = _text_block()
    start = rng.randrange(len(block))
    rotated = block[start:] + block[:start]
    return (rotated * (length // len(rotated) + 1))[:length]


def _repeated(rng: random.Random, length: int) -> bytes:
    shared = _shared_blocks()
    parts: list[bytes] = []
    size = 0
    while size < length:
        block = shared[rng.randrange(len(shared))]
        parts.append(block)
        size += len(block)
    return b"".join(parts)[:length]


def _extent_bytes(kind: str, rng: random.Random, seed: int | str, index: int, length: int) -> bytes:
    if kind == "text":
        return _text(rng, length)
    if kind == "repeated":
        return _repeated(rng, length)
    if kind == "zeros":
        return bytes(length)
    # blake3 in XOF mode: deterministic and >1 GB/s, where random.randbytes manages ~150 MB/s.
    return blake3.blake3(f"{seed}:{index}".encode()).digest(length=length)


def write_disk_image(
    path: Path,
    size_bytes: int,
    seed: int | str,
    *,
    data_fraction: float = 0.02,
    mix: ContentMix | None = None,
) -> int:
    """Write a sparse raw image of `size_bytes` with about `data_fraction` of it as data.

    Returns the number of data bytes written. The first 64 KiB always hold data (a boot
    sector / partition table region); the rest are extents spread over the whole disk with
    holes between them, some placed at offsets that are not 4 KiB aligned.
    """
    if not 0 <= data_fraction <= 1:
        raise ValueError(f"data_fraction must be between 0 and 1, not {data_fraction}")
    mix = mix or ContentMix()
    kinds = ["text", "random", "repeated", "zeros"]
    weights = [mix.text, mix.random, mix.repeated, mix.zeros]
    rng = random.Random(f"{seed}")
    budget = int(size_bytes * data_fraction)
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, size_bytes)
        header = min(64 * KIB, size_bytes, budget)
        if header:
            os.pwrite(fd, _extent_bytes("random", rng, seed, -1, 512) + _text(rng, header - 512), 0)
            written = header
        remaining = budget - written
        mean_extent = (mix.min_extent + mix.max_extent) // 2
        extents = max(1, remaining // mean_extent)
        free_space = size_bytes - budget
        mean_gap = max(_BLOCK, free_space // (extents + 1))
        position = header
        index = 0
        while remaining > 0 and position < size_bytes:
            position += rng.randrange(0, 2 * mean_gap) // _BLOCK * _BLOCK
            kind = rng.choices(kinds, weights)[0]
            if kind == "repeated":
                position += rng.randrange(1, _BLOCK)  # duplicates rarely sit on chunk boundaries
            length = min(rng.randint(mix.min_extent, mix.max_extent), remaining, size_bytes - position)
            if length <= 0:
                break
            os.pwrite(fd, _extent_bytes(kind, rng, seed, index, length), position)
            position += length
            remaining -= length
            written += length
            index += 1
    finally:
        os.close(fd)
    return written
