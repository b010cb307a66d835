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

import time
from collections.abc import Callable

from bingobackup.backup.resume import LinkRetry, is_link_error
from bingobackup.format.manifest import ChunkRef
from bingobackup.mover.restore import ChunkSource


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
        self._retry = LinkRetry(
            window_seconds=window_seconds,
            what=what,
            clock=clock,
            sleep=sleep,
            first_pause=first_pause,
            max_pause=max_pause,
        )

    @property
    def reconnects(self) -> int:
        return self._retry.reconnects

    @property
    def failed_attempts(self) -> int:
        return self._retry.failed_attempts

    def read_chunk(self, ref: ChunkRef) -> bytes:
        try:
            return self._source.read_chunk(ref)
        except Exception as error:
            if not is_link_error(error):
                raise
            return self._retry.resume(
                lambda: self._source.read_chunk(ref), f"reading offset {ref.offset}", error
            )
