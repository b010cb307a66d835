"""Keep freed chunk buffers mapped, so the next chunk does not page-fault them back in.

Every chunk passes through a few multi-MiB buffers (the read, zstd's output, the AES-GCM
output, the decoded plaintext), all freed within milliseconds. glibc's malloc hands such
memory back to the kernel as soon as more than a few MiB are free at the top of a thread's
heap, and the next buffer then takes a page fault per 4 KiB page: on a virtual machine that
is several microseconds each, more than zstd spends on the same bytes (an export measured
284,000 faults per GiB restored and twice the CPU time). Raising the trim threshold keeps
what was freed for the next chunk instead; the peak stays what the channels hold at once.

Process-wide and idempotent. A no-op where malloc is not glibc's (musl, macOS, Windows).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

# mallopt parameters from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Buffers up to this size come from the heap (glibc's ceiling for it); bigger ones are
# mapped and unmapped as before.
MMAP_THRESHOLD = 32 << 20
# Free memory kept at the top of a heap before it goes back to the kernel.
TRIM_THRESHOLD = 256 << 20

_lock = threading.Lock()
_applied: bool | None = None


def keep_freed_buffers() -> bool:
    """Tune malloc once for chunk-sized buffers; True when the tuning is in effect."""
    global _applied
    with _lock:
        if _applied is None:
            _applied = _tune()
        return _applied


def _tune() -> bool:
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # Setting either threshold turns glibc's own adjustment off, so both are set.
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
