"""The read and transfer limits against a real clock, on a few hundred MiB through a real pool.

The read limit counts bytes read from the disk; the transfer limit counts what the pool
newly stores: envelopes after compression and encryption. A disk that compresses 8:1 under a
transfer limit goes at about 8× the limit in disk bytes; under a read limit, at the limit."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from bingobackup.mover.backup import DiskBackupResult, backup_disk
from bingobackup.mover.ratelimit import RateLimiter
from bingobackup.pools import Pool, create_pool

MIB = 1 << 20
CHUNK = 4 * MIB
DISK = 200 * MIB
RATE = 50 * MIB
BURST = 4 * MIB  # the limiter's default bucket: goes unpaced
FAST_SCRYPT = 1 << 10


@pytest.fixture(scope="module")
def compressible_disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every chunk: 512 KiB random (stored as is), then text zstd squeezes to almost nothing."""
    path = tmp_path_factory.mktemp("disk") / "disk.raw"
    text = (b"bingobackup compressible filler line\n" * (CHUNK // 37 + 1))[: CHUNK - CHUNK // 8]
    with path.open("wb") as out:
        for _ in range(DISK // CHUNK):
            out.write(os.urandom(CHUNK // 8) + text)
    return path


def _encrypted_pool(tmp_path: Path) -> Pool:
    return create_pool(
        tmp_path / "pool",
        "standard",
        chunk_size=CHUNK,
        encrypted=True,
        passphrase="correct horse battery staple",
        scrypt_n=FAST_SCRYPT,
    )


def _backup(disk: Path, pool: Pool, **limits: RateLimiter) -> tuple[DiskBackupResult, float]:
    started = time.monotonic()
    result = backup_disk(
        disk,
        pool.open_disk_writer("set-1", "vol-1", DISK),
        size_bytes=DISK,
        chunk_size=CHUNK,
        **limits,  # type: ignore[arg-type]
    )
    return result, time.monotonic() - started


def _restored_digest(pool: Pool, result: DiskBackupResult) -> str:
    digest = hashlib.sha256()
    for _, plain in pool.iter_disk(result.manifest):  # type: ignore[attr-defined]
        digest.update(plain)
    return digest.hexdigest()


def test_transfer_limit_paces_the_stored_envelopes_not_the_disk_bytes(
    compressible_disk: Path, tmp_path: Path
) -> None:
    pool = _encrypted_pool(tmp_path)
    result, elapsed = _backup(compressible_disk, pool, send_limiter=RateLimiter(RATE))

    assert result.bytes_sent == DISK and result.bytes_stored < DISK / 6  # compressed ~8:1
    # Paced on what crossed to the pool: at least the stored bytes after the burst at the rate …
    assert elapsed >= (result.bytes_stored - BURST) / RATE * 0.95
    # … and far quicker than 200 MiB at 50 MiB/s (≥ 3.9 s when whole chunks were counted).
    assert elapsed < (DISK - BURST) / RATE * 0.75
    assert _restored_digest(pool, result) == hashlib.sha256(compressible_disk.read_bytes()).hexdigest()


def test_read_limit_paces_the_bytes_read_whatever_they_compress_to(
    compressible_disk: Path, tmp_path: Path
) -> None:
    rate = 100 * MIB
    result, elapsed = _backup(compressible_disk, _encrypted_pool(tmp_path), read_limiter=RateLimiter(rate))

    assert result.bytes_read == DISK and result.bytes_stored < DISK / 6
    assert elapsed >= (DISK - BURST) / rate * 0.95  # ≥ 1.9 s: every byte read counts
