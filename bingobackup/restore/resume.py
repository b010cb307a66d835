"""Reconnect on the pool side of a restore (guide 6.4: reconnect time, resume buffer).

`ResumingSource` wraps the pool a restore reads chunks from. When a read fails because the
link to the pool is down (an I/O or connection error: `backup.resume.is_link_error`), the
channel retries that one chunk with growing pauses until the reconnect window ends; every
chunk already written stays written, so the disk continues where it was. A damaged chunk, a
missing blob or a missing disc are not link problems and fail at once. Each channel waits on
at most one chunk, so the resume buffer must hold one chunk of the pool
(`backup.resume.check_resume_buffer`, called when the job is prepared).

The cloud side of the reconnect time is the client's `retry_window_seconds`
(`RestoreJob.client()`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from bingobackup.backup.resume import PoolLinkLost, is_link_error
from bingobackup.format.manifest import ChunkRef
from bingobackup.mover.restore import ChunkSource

log = logging.getLogger("bingobackup.restore")


class ResumingSource:
    """A `ChunkSource` whose `read_chunk` rides out a lost link to the pool for `window_seconds`."""

    def __init__(
        self,
        source: ChunkSource,
        *,
        window_seconds: float,
        what: str = "restore",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        first_pause: float = 0.05,
        max_pause: float = 5.0,
    ) -> None:
        self._source = source
        self.window_seconds = window_seconds
        self._what = what
        self._clock, self._sleep = clock, sleep
        self._first_pause, self._max_pause = first_pause, max_pause
        self._lock = threading.Lock()
        self.reconnects = 0
        self.failed_attempts = 0

    def read_chunk(self, ref: ChunkRef) -> bytes:
        try:
            return self._source.read_chunk(ref)
        except Exception as error:
            if not is_link_error(error):
                raise
            return self._resume(ref, error)

    def _resume(self, ref: ChunkRef, first: Exception) -> bytes:
        deadline = self._clock() + self.window_seconds
        pause, error = self._first_pause, first
        log.warning(
            "%s: link to the pool lost reading the chunk at offset %d (%s); retrying for up to %.0f s",
            self._what,
            ref.offset,
            first,
            self.window_seconds,
        )
        while True:
            with self._lock:
                self.failed_attempts += 1
            if self._clock() + pause > deadline:
                raise PoolLinkLost(
                    f"{self._what}: the pool did not answer again within the reconnect time of "
                    f"{self.window_seconds / 60:g} min reading offset {ref.offset} (last error: {error}). "
                    "Check the pool's storage or network, or raise options.reconnect_minutes (1–60), "
                    "and run the restore again"
                ) from error
            self._sleep(pause)
            pause = min(pause * 2, self._max_pause)
            try:
                data = self._source.read_chunk(ref)
            except Exception as retry_error:
                if not is_link_error(retry_error):
                    raise
                error = retry_error
                continue
            with self._lock:
                self.reconnects += 1
            log.info("%s: pool reachable again; continuing at offset %d", self._what, ref.offset)
            return data
