"""Helpers for the pool tests: the pool variants, a test disk, and writing/reading it back."""

from __future__ import annotations

import errno
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bingobackup.format.manifest import DiskManifest
from bingobackup.pools import DiskWriter, Pool

CHUNK = 64 * 1024
PASSPHRASE = "correct horse battery staple"
FAST_SCRYPT_N = 2**10  # the real default costs ~80 ms per open; the format is the same


@dataclass(frozen=True)
class Variant:
    kind: str
    encrypted: bool
    compression: str

    @property
    def id(self) -> str:
        return f"{self.kind}-{'aes' if self.encrypted else 'plain'}-{self.compression}"

    @property
    def passphrase(self) -> str | None:
        return PASSPHRASE if self.encrypted else None


VARIANTS = [Variant(k, e, c) for k in ("dedup", "standard") for e in (False, True) for c in ("fast", "none")]

# The conformance suite runs over every pool kind. Compression and encryption live in the content
# layer, the same on every kind: the dedup and standard kinds (a local directory) run every
# variant, the other kinds two each (keeps the suite fast). Tape and optical are stream writers on
# the standard pool format (no dedup).
OTHER_KINDS = {
    "dedup-v1": ("dedup-aes-fast", "dedup-plain-none"),
    "object": ("dedup-aes-fast", "standard-plain-none"),
    "lanfree": ("dedup-plain-none", "standard-aes-fast"),
    "tape": ("standard-aes-fast", "standard-plain-none"),
    "optical": ("standard-aes-none", "standard-plain-fast"),
}
COMBOS = [(v.kind, v) for v in VARIANTS] + [
    (kind, v) for kind, ids in OTHER_KINDS.items() for v in VARIANTS if v.id in ids
]
ENCRYPTED_COMBOS = [c for c in COMBOS if c[1].encrypted]


def combo_id(combo: tuple[str, Variant]) -> str:
    kind, variant = combo
    return variant.id if kind == variant.kind else f"{kind}-{variant.id}"


@dataclass(frozen=True)
class TestDisk:
    __test__ = False

    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def chunks(self) -> list[tuple[int, bytes]]:
        return [(o, self.data[o : o + CHUNK]) for o in range(0, len(self.data), CHUNK)]


def make_disk() -> TestDisk:
    """random | text | zeros | repeat of the random chunk | random | short random tail."""
    first = os.urandom(CHUNK)
    text = (b"the quick brown fox jumps over the lazy dog\n" * CHUNK)[:CHUNK]
    return TestDisk(first + text + bytes(CHUNK) + first + os.urandom(CHUNK) + os.urandom(CHUNK // 3))


def write_disk(writer: DiskWriter, disk: TestDisk, mode: str = "agent", threads: int = 4) -> DiskManifest:
    """Feeds `disk` the way the mover does: many threads, agent-side asks `has` first."""

    def send(item: tuple[int, bytes]) -> None:
        offset, data = item
        if mode == "agent":
            send_chunk(writer, offset, data)
        else:
            writer.put_chunk(offset, data, mode="server")

    with ThreadPoolExecutor(threads) as executor:
        list(executor.map(send, disk.chunks()))
    return writer.commit()


def send_chunk(writer: DiskWriter, offset: int, data: bytes) -> None:
    """One chunk as the agent sends it: only its digest when the pool already holds it."""
    digest = writer.chunk_digest(data)
    if writer.has(digest):
        writer.add_known(offset, len(data), digest)
    else:
        writer.put_chunk(offset, data, digest=digest, mode="agent")


def store_disk(
    pool: Pool, set_id: str, volume: str, data: bytes, chunk_size: int, *, skip_zeros: bool = False
) -> DiskManifest:
    """`data` backed up as one disk of `set_id` by one thread, as the pipeline drives the
    writer: a chunk the pool knows is not sent; with `skip_zeros`, a zero chunk is not stored."""
    writer = pool.open_disk_writer(set_id, volume, len(data))
    for offset in range(0, len(data), chunk_size):
        chunk = data[offset : offset + chunk_size]
        if skip_zeros and not chunk.strip(b"\0"):
            continue
        send_chunk(writer, offset, chunk)
    return writer.commit()


def read_back(pool: Pool, manifest: DiskManifest) -> bytes:
    out = bytearray(manifest.size_bytes)
    for ref, plaintext in pool.iter_disk(manifest):
        out[ref.offset : ref.offset + ref.length] = plaintext
    return bytes(out)


def tree_snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under root: (size, mtime_ns, sha256) — to prove nothing was touched."""
    snapshot = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            stat = path.stat()
            snapshot[str(path.relative_to(root))] = (
                stat.st_size,
                stat.st_mtime_ns,
                hashlib.sha256(path.read_bytes()).hexdigest(),
            )
    return snapshot


def fill_host_disk_at_third_write(monkeypatch: pytest.MonkeyPatch, module: Any) -> None:
    """`module.write_fully` (tape cartridges, optical staging) writes half of its third write
    and then fails with ENOSPC, as a host disk filling up in the middle of a record does."""
    real, writes = module.write_fully, []

    def disk_fills_up(fd: int, data: bytes, offset: int) -> None:
        writes.append(len(data))
        if len(writes) == 3:
            real(fd, data[: len(data) // 2], offset)
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data, offset)

    monkeypatch.setattr(module, "write_fully", disk_fills_up)
