"""A run's watchdog: a run that makes no progress for too long is stopped and fails, naming
what it was waiting on, instead of hanging without a word.

Progress is any sign that work moves: a disk's bytes (the run's `ProgressTracker` beats it)
and a VM or disk finishing (the flow's admission loop beats it). The loop that waits for
work calls `check` while it waits; once the run has stood still for the limit, the watchdog
trips: it sets its `cancel` event, which every disk pipeline of the run polls (so they stop
at their next chunk, rate-limit wait or queue hand-off), and `check` raises `RunStalled`
with what the run was waiting on. The limit is longer than the cloud waits' own time-outs
by default, so a slow snapshot is reported by its own time-out first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from bingobackup.errors import BingoBackupError


class RunStalled(BingoBackupError):
    """The run made no progress for the watchdog's limit and was stopped."""


class Watchdog:
    def __init__(self, limit_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        if limit_seconds <= 0:
            raise ValueError("a watchdog's limit must be positive")
        self.limit_seconds = limit_seconds
        self.cancel = threading.Event()
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()
        self._reason: str | None = None

    @property
    def poll_seconds(self) -> float:
        """How often a waiting loop should call `check`: often enough to trip near the limit."""
        return min(5.0, max(self.limit_seconds / 10, 0.05))

    def beat(self) -> None:
        with self._lock:
            self._last = self._clock()

    @property
    def tripped(self) -> str | None:
        """Why the run was stopped, once it was."""
        return self._reason

    def check(self, waiting_on: Iterable[str]) -> None:
        """Raise RunStalled (and stop the run's pipelines) once the run stood still too long."""
        with self._lock:
            if self._reason is None:
                idle = self._clock() - self._last
                if idle < self.limit_seconds:
                    return
                what = "; ".join(waiting_on) or "nothing (no task was running)"
                self._reason = (
                    f"no progress for {_duration(idle)} (the job's stall_minutes), so the run was "
                    f"stopped. It was waiting on: {what}. Look at those VMs' disks and the backup "
                    "host (a hung device, a cloud call that never returns, a pool that stopped "
                    "answering), then run the job again."
                )
                self.cancel.set()
            reason = self._reason
        raise RunStalled(reason)


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"
