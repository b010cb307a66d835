"""Small helpers shared by the backup reader and the restore writer."""

from __future__ import annotations

from collections.abc import Callable


def chunk_spans(size_bytes: int, chunk_size: int) -> range:
    """Offsets of the fixed-size chunks covering a disk of `size_bytes`."""
    return range(0, size_bytes, chunk_size)


def human_bytes(count: int) -> str:
    """`268435456` → `256 MiB`: sizes and disk offsets for people."""
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


class ProgressThrottle:
    """Calls `progress(done, total)` at most every `interval` seconds, and always at the end."""

    def __init__(
        self,
        progress: Callable[[int, int], None] | None,
        total: int,
        clock: Callable[[], float],
        interval: float = 0.2,
    ) -> None:
        self._progress = progress
        self._total = total
        self._clock = clock
        self._interval = interval
        self._last_time = float("-inf")
        self._last_done = -1

    def report(self, done: int, *, final: bool = False) -> None:
        if self._progress is None or done == self._last_done:
            return
        now = self._clock()
        if final or now - self._last_time >= self._interval:
            self._last_time = now
            self._last_done = done
            self._progress(done, self._total)
