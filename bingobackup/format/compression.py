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
# Level 1 keeps a 512 KiB window even for a 4 MiB chunk, so data repeated further apart
# inside one chunk is stored twice. A window spanning the whole chunk costs no extra memory
# (one-shot compression reads the input in place), leaves system binaries at the same speed
# and ratio, and on the benchmark image is 1.7× faster with ratio 2.06 instead of 1.78
# (long matches are cheaper than literals). Capped at 2^27: every zstd decoder's default.
_MAX_WINDOW_LOG = 27


class CompressionId(IntEnum):
    NONE = 0
    ZSTD = 1


_local = threading.local()


def window_log(length: int) -> int:
    """The zstd window (log2 bytes) "fast" uses for a chunk of `length` bytes: the whole chunk."""
    return min(max(10, (length - 1).bit_length()), _MAX_WINDOW_LOG)


def fast_compressor(length: int) -> zstandard.ZstdCompressor:
    """This thread's "fast" compressor for chunks of `length` bytes (zstd contexts are not
    thread-safe; one per thread keeps channels parallel without a lock)."""
    log = window_log(length)
    compressors: dict[int, zstandard.ZstdCompressor] = _local.__dict__.setdefault("compressors", {})
    compressor = compressors.get(log)
    if compressor is None:
        params = zstandard.ZstdCompressionParameters.from_level(
            FAST_LEVEL, source_size=length, window_log=log, write_content_size=True
        )
        compressor = compressors[log] = zstandard.ZstdCompressor(compression_params=params)
    return compressor


def _decompressor() -> zstandard.ZstdDecompressor:
    decompressor: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = zstandard.ZstdDecompressor()
        _local.decompressor = decompressor
    return decompressor


def compress(data: bytes | bytearray, setting: CompressionSetting) -> tuple[CompressionId, bytes | bytearray]:
    """(id, payload); incompressible data comes back unchanged (no copy) with id NONE."""
    if setting == "none":
        return CompressionId.NONE, data
    packed = fast_compressor(len(data)).compress(data)
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
