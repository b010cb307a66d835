"""A run's progress across every disk, for backup and restore alike: bytes done over bytes to
do, reported to the flow's progress artifact at most every `interval` and to every listener
in this process (the CLI's progress bar)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from bingobackup.watchdog import Watchdog

ProgressListener = Callable[[int, int], None]
# Callbacks (done bytes, total bytes) of every run in this process: the CLI draws its
# progress bar from them while the flow updates its Prefect progress artifact.
PROGRESS_LISTENERS: list[ProgressListener] = []


class ProgressTracker:
    """Bytes done over bytes to do across every disk of a run, reported at most every `interval`."""

    def __init__(
        self,
        total_bytes: int,
        report: Callable[[float], None] | None,
        interval: float = 1.0,
        watchdog: Watchdog | None = None,
    ) -> None:
        self.total_bytes = max(total_bytes, 1)
        self.watchdog = watchdog
        self._report = report
        self._interval = interval
        self._done: dict[str, int] = {}
        self._lock = threading.Lock()
        self._last = 0.0

    def update(self, key: str, done_bytes: int) -> None:
        if self.watchdog is not None:
            self.watchdog.beat()
        with self._lock:
            self._done[key] = done_bytes
            done = sum(self._done.values())
        for listener in PROGRESS_LISTENERS:
            listener(done, self.total_bytes)
        with self._lock:
            now = time.monotonic()
            if self._report is None or now - self._last < self._interval:
                return
            self._last = now
            percent = 100.0 * sum(self._done.values()) / self.total_bytes
        self._report(min(percent, 100.0))

    def finish(self) -> None:
        for listener in PROGRESS_LISTENERS:
            listener(self.total_bytes, self.total_bytes)
        if self._report is not None:
            self._report(100.0)
