"""The machine's limit: what one core does per second for each step of the data path.

Every primitive runs single-threaded on 4 MiB buffers sampled from the benchmark image itself
(so zstd sees the same mix the engine sees), best of a few passes. A step's limit on this
machine is then the sum of its per-byte costs divided by the number of cores: no pipeline
can beat it, and the engine's fraction of it says how much the pipeline leaves on the table.
"""

from __future__ import annotations

import hashlib
import os
import platform
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import blake3
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel

from benchmarks.image import REGION, scan_nonzero

SAMPLE_CHUNKS = 16
PASSES = 3


class MachineInfo(BaseModel):
    cores: int
    cpu_model: str
    python: str
    libraries: dict[str, str]


class MachineLimits(BaseModel):
    """Single-core throughput in bytes per second of each primitive."""

    cores: int
    sha256: float
    blake3: float
    zstd1_compress: float
    zstd_decompress: float
    aes_gcm_encrypt: float
    aes_gcm_decrypt: float
    cached_read: float
    cached_write: float
    compress_ratio: float  # of the sample at zstd level 1 (what the pool stores per data byte)

    def backup_seconds(self, read: int, hashed: int, sealed: int) -> float:
        """Least wall time on all cores to read `read` bytes, hash `hashed`, compress+encrypt `sealed`."""
        per_core = (
            read / self.cached_read
            + hashed / self.blake3
            + sealed / self.zstd1_compress
            + sealed / self.compress_ratio / self.aes_gcm_encrypt
            + sealed / self.compress_ratio / self.cached_write
        )
        return per_core / self.cores

    def export_seconds(self, data: int) -> float:
        """Least wall time on all cores to read, decrypt, decompress, verify and write `data` bytes."""
        stored = data / self.compress_ratio
        per_core = (
            stored / self.cached_read
            + stored / self.aes_gcm_decrypt
            + data / self.zstd_decompress
            + data / self.blake3
            + data / self.cached_write
        )
        return per_core / self.cores


def machine_info() -> MachineInfo:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    libraries = {}
    for name in ("blake3", "zstandard", "cryptography", "prefect", "pydantic"):
        try:
            libraries[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            libraries[name] = "not installed"
    return MachineInfo(
        cores=os.cpu_count() or 1,
        cpu_model=model,
        python=platform.python_version(),
        libraries=libraries,
    )


def _best_rate(total: int, run: Callable[[], object]) -> float:
    """`total` bytes over the best wall time of a few runs of `run`."""
    best = float("inf")
    for _ in range(PASSES):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return total / best


def _rate(buffers: list[bytes], step: Callable[[bytes], object]) -> float:
    return _best_rate(sum(map(len, buffers)), lambda: [step(b) for b in buffers])


def sample_chunks(image: Path, count: int = SAMPLE_CHUNKS) -> list[bytes]:
    """`count` non-zero 4 MiB regions spread evenly over the image."""
    _, offsets = scan_nonzero(image)
    if not offsets:
        raise ValueError(f"{image} holds no data to sample; build the benchmark image first")
    step = max(1, len(offsets) // count)
    with open(image, "rb", buffering=0) as f:
        return [os.pread(f.fileno(), REGION, offset) for offset in offsets[::step][:count]]


def _read_all(fd: int, size: int) -> None:
    for offset in range(0, size, REGION):
        os.pread(fd, REGION, offset)  # dropped at once: memory stays at one region


def _read_rate(image: Path, scratch: Path) -> tuple[float, float]:
    """Cached read (the image is in the page cache after it was built) and cached write speed."""
    size = image.stat().st_size
    fd = os.open(image, os.O_RDONLY)
    try:
        read = _best_rate(size, lambda: _read_all(fd, size))
    finally:
        os.close(fd)
    chunk = os.urandom(REGION)
    count = 64
    out = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        write = _best_rate(count * REGION, lambda: [os.pwrite(out, chunk, i * REGION) for i in range(count)])
    finally:
        os.close(out)
        scratch.unlink(missing_ok=True)
    return read, write


def probe(image: Path, scratch: Path) -> MachineLimits:
    buffers = sample_chunks(image)
    key = os.urandom(32)
    aead = AESGCM(os.urandom(32))
    nonce = os.urandom(12)
    compressor = zstandard.ZstdCompressor(level=1)
    packed = [compressor.compress(b) for b in buffers]
    sealed = [aead.encrypt(nonce, p, None) for p in packed]
    decompressor = zstandard.ZstdDecompressor()
    read, write = _read_rate(image, scratch)
    return MachineLimits(
        cores=os.cpu_count() or 1,
        sha256=_rate(buffers, lambda b: hashlib.sha256(b).digest()),
        blake3=_rate(buffers, lambda b: blake3.blake3(b, key=key).digest()),
        zstd1_compress=_rate(buffers, compressor.compress),
        # decompression and decryption are rated per plaintext byte they produce
        zstd_decompress=_rate(packed, decompressor.decompress)
        * sum(map(len, buffers))
        / sum(map(len, packed)),
        aes_gcm_encrypt=_rate(packed, lambda p: aead.encrypt(nonce, p, None)),
        aes_gcm_decrypt=_rate(sealed, lambda s: aead.decrypt(nonce, s, None)),
        cached_read=read,
        cached_write=write,
        compress_ratio=sum(map(len, buffers))
        / sum(min(len(p), len(b)) for p, b in zip(packed, buffers, strict=True)),
    )
