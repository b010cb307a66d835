"""Chunk compression. Identifiers are stored in every chunk envelope and are never reused.

| id | name | note |
|----|------|------|
| 0  | none | stored raw (also used when zstd does not shrink a chunk) |
| 1  | zstd | level chosen by the pool's compression setting |

The pool's setting ("fast" or "none") only decides how new chunks are written; a reader
decodes whatever id a chunk carries, so the setting may change without rewriting anything.
"""

from __future__ import annotations

import threading
from enum import IntEnum
from typing import Literal

import zstandard

from bingobackup.format.errors import UnsupportedFormatError

CompressionSetting = Literal["fast", "none"]

# `python -m bingobackup.format.bench_compression` on system binaries and text: level 1 gives
# ~420 MiB/s per core at ratio 2.3; level 3 halves the speed for ratio 2.6 (docs/format.md).
FAST_LEVEL = 1


class CompressionId(IntEnum):
    NONE = 0
    ZSTD = 1


_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    # zstd contexts are not thread-safe; one per thread keeps channels parallel without a lock.
    compressor: zstandard.ZstdCompressor | None = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = zstandard.ZstdCompressor(level=FAST_LEVEL, write_content_size=True)
        _local.compressor = compressor
    return compressor


def _decompressor() -> zstandard.ZstdDecompressor:
    decompressor: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = zstandard.ZstdDecompressor()
        _local.decompressor = decompressor
    return decompressor


def compress(data: bytes, setting: CompressionSetting) -> tuple[CompressionId, bytes]:
    """(id, payload); incompressible data comes back unchanged (no copy) with id NONE."""
    if setting == "none":
        return CompressionId.NONE, data
    packed = _compressor().compress(data)
    if len(packed) >= len(data):
        return CompressionId.NONE, data
    return CompressionId.ZSTD, packed


def decompress(compression_id: int, payload: bytes | memoryview, plaintext_length: int) -> bytes:
    """The plaintext; raises UnsupportedFormatError for an unknown id, zstd errors as ZstdError."""
    if compression_id == CompressionId.NONE:
        return bytes(payload)  # no copy when it already is bytes
    if compression_id == CompressionId.ZSTD:
        return _decompressor().decompress(payload, max_output_size=plaintext_length)
    raise UnsupportedFormatError(
        f"compression id {compression_id} is unknown to this version of bingobackup; upgrade it to read this pool"
    )
