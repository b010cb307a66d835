"""All-zero chunks are stored as nothing: a fast test for them."""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import lru_cache

# Below this a plain comparison is cheaper than a foreign call.
_FOREIGN_MIN = 64 << 10


def _load_memcmp() -> Callable[[int, int, int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        memcmp = ctypes.CDLL(name).memcmp if name else None
    except (OSError, AttributeError):
        return None
    if memcmp is None:
        return None
    memcmp.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    memcmp.restype = ctypes.c_int
    return memcmp


# Called through ctypes, which releases the GIL for the call: a block-device backup tests
# every byte of the disk (GiBs of holes among them), and holding the GIL for that stalled
# the threads hashing, compressing and writing (measured: a fifth of the GIL's busy time).
_memcmp = _load_memcmp()


@lru_cache(maxsize=4)
def _zeros(length: int) -> bytearray:
    # Never written to. A bytearray because its == compares any buffer with one memcmp,
    # memoryviews included; `memoryview == bytes` goes item by item (~30x slower).
    return bytearray(length)


def is_zero(data: bytes | bytearray | memoryview) -> bool:
    """True when every byte is zero.

    Large `bytes` and `bytearray`s (a chunk read around holes) are compared with themselves
    shifted by one byte (zero iff the first byte is zero and every byte equals the next): one
    pass over one buffer, without the GIL. Anything else is compared with a cached zero
    buffer: one memcmp under the GIL.
    """
    if _memcmp is not None and type(data) in (bytes, bytearray) and len(data) >= _FOREIGN_MIN:
        if data[0] or data[-1]:
            return False
        # `data` stays referenced by this frame for the whole call, so the buffer cannot go
        # away; a bytearray's export (`from_buffer`) also keeps it from being resized meanwhile.
        if type(data) is bytes:
            address = ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value
            assert address is not None
            return _memcmp(address, address + 1, len(data) - 1) == 0
        exported = ctypes.c_char.from_buffer(data)
        return _memcmp(ctypes.addressof(exported), ctypes.addressof(exported) + 1, len(data) - 1) == 0
    length = data.nbytes if isinstance(data, memoryview) else len(data)
    return _zeros(length) == data
