"""Riding out a lost link to the pool, for backup and restore alike (guide table 3 and 6.4:
reconnect time, resume buffer): which failures are a lost link (the blob store's own word,
rule 10 of storage/base.py), the check that the resume buffer holds a chunk, and `LinkRetry`,
which retries one pool operation with growing pauses until the reconnect window ends."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from bingobackup.errors import BingoBackupError
from bingobackup.storage.errors import is_permanent_error

log = logging.getLogger("bingobackup.backup")
T = TypeVar("T")


class PoolLinkLost(BingoBackupError):
    pass


class ResumeBufferTooSmall(BingoBackupError):
    pass


def is_link_error(error: BaseException) -> bool:
    """A lost or flaky link to the pool's storage: the store's own word (rule 10 of storage/base.py)."""
    return not is_permanent_error(error)


def check_resume_buffer(resume_buffer_mib: int, chunk_size: int) -> None:
    """A channel holds one whole chunk while the link is down: the buffer must fit one."""
    if resume_buffer_mib * (1 << 20) < chunk_size:
        raise ResumeBufferTooSmall(
            f"resume buffer of {resume_buffer_mib} MiB per channel cannot hold one chunk of this pool "
            f"({chunk_size / (1 << 20):g} MiB); set options.resume_buffer_mib to at least "
            f"{-(-chunk_size // (1 << 20))}"
        )


class LinkRetry:
    """Retries one pool operation while the link is down, with growing pauses, until the
    reconnect window ends (shared by the backup's sink and the restore's chunk source)."""

    def __init__(
        self,
        *,
        window_seconds: float,
        what: str,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        first_pause: float = 0.05,
        max_pause: float = 5.0,
    ) -> None:
        self.window_seconds = window_seconds
        self._what = what
        self._clock, self._sleep = clock, sleep
        self._first_pause, self._max_pause = first_pause, max_pause
        self._lock = threading.Lock()
        self.reconnects = 0
        self.failed_attempts = 0

    def call(self, operation: Callable[[], T], where: str) -> T:
        """`operation`, ridden out with `resume` when it fails with a link error."""
        try:
            return operation()
        except Exception as error:
            if not is_link_error(error):
                raise
            return self.resume(operation, where, error)

    def resume(self, operation: Callable[[], T], where: str, first: Exception) -> T:
        """Runs `operation` again after `first` (a link error) until it succeeds or the window ends."""
        deadline = self._clock() + self.window_seconds
        pause, error = self._first_pause, first
        log.warning(
            "%s: link to the pool lost %s (%s); retrying for up to %.0f s",
            self._what,
            where,
            first,
            self.window_seconds,
        )
        while True:
            with self._lock:
                self.failed_attempts += 1
            if self._clock() + pause > deadline:
                raise PoolLinkLost(
                    f"{self._what}: the pool did not answer again within the reconnect time of "
                    f"{self.window_seconds / 60:g} min {where} (last error: {error}). Check the pool's "
                    "storage or network, or raise options.reconnect_minutes (1–60), and run the job again"
                ) from error
            self._sleep(pause)
            pause = min(pause * 2, self._max_pause)
            try:
                result = operation()
            except Exception as retry_error:
                if not is_link_error(retry_error):
                    raise
                error = retry_error
                continue
            with self._lock:
                self.reconnects += 1
            log.info("%s: pool reachable again; continuing %s", self._what, where)
            return result
