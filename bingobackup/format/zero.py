"""All-zero chunks are stored as nothing: a fast test for them."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=4)
def _zeros(length: int) -> bytes:
    return bytes(length)


def is_zero(data: bytes | bytearray | memoryview) -> bool:
    """True when every byte is zero.

    Equality with a cached zero buffer is one memcmp (tens of GB/s), far faster than
    `data.count(0)`; the cache holds a full chunk and a short tail at most.
    """
    return data == _zeros(len(data))
