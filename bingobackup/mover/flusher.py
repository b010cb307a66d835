"""Write-back of a restore target while the restore is still running.

A restore is only finished once its target is fsynced. Left to the end, that fsync writes
every byte of the disk to storage while no core decodes anything (a third of an export's
time on a 1 GiB disk). The flusher calls fdatasync from its own thread each time another
`every` bytes were written, so storage works while the channels decode, and the final fsync
has only the tail left. What was written back leaves the page cache (`files.uncache`): a
restored disk is not read again by the restore, and the next chunks are written into the
pages it freed.

A write-back error fails the restore: Linux reports it to one fsync caller only, so the
final fsync might not see an error the flusher swallowed.
"""

from __future__ import annotations

import os
import threading

from bingobackup.files import uncache
from bingobackup.mover.crew import Crew

FLUSH_EVERY = 64 << 20


class Flusher:
    def __init__(self, fd: int, crew: Crew, every: int | None = None) -> None:
        self._fd = fd
        self._crew = crew
        self._every = FLUSH_EVERY if every is None else every
        self._pending = 0
        self._stopping = False
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="restore-flusher", daemon=True)
        self._thread.start()

    def wrote(self, length: int) -> None:
        with self._wake:
            self._pending += length
            if self._pending >= self._every:
                self._wake.notify()

    def stop(self) -> None:
        """Idempotent; returns once no fdatasync is running any more."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._pending < self._every and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                self._pending = 0
            try:
                os.fdatasync(self._fd)
                uncache(self._fd)  # what is written back is not read again by the restore
            except OSError as error:
                self._crew.fail(error)
                return
