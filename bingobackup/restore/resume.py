"""Reconnect on the pool side of a restore (guide 6.4: reconnect time, resume buffer).

`ResumingSource` wraps the pool a restore reads chunks from. When a read fails because the
link to the pool is down (an I/O or connection error: `jobs.linkretry.is_link_error`), the
channel retries that one chunk with growing pauses until the reconnect window ends; every
chunk already written stays written, so the disk continues where it was. A damaged chunk, a
missing blob or a missing disc are not link problems and fail at once. Each channel waits on
at most one chunk, so the resume buffer must hold one chunk of the pool
(`jobs.linkretry.check_resume_buffer`, called when the job is prepared).

The cloud side of the reconnect time is the client's `retry_window_seconds`
(`RestoreJob.client()`).
"""

from __future__ import annotations

from bingobackup.format.manifest import ChunkRef
from bingobackup.jobs.linkretry import LinkRetry, is_link_error
from bingobackup.mover.restore import ChunkSource


class ResumingSource:
    """A `ChunkSource` whose `read_chunk` rides out a lost link to the pool with `retry`."""

    def __init__(self, source: ChunkSource, retry: LinkRetry) -> None:
        self._source = source
        self.retry = retry

    def read_chunk(self, ref: ChunkRef) -> bytes:
        try:
            return self._source.read_chunk(ref)
        except Exception as error:
            if not is_link_error(error):
                raise
            return self.retry.resume(
                lambda: self._source.read_chunk(ref), f"reading offset {ref.offset}", error
            )
