"""A run's progress artifact in the Prefect UI, published from a thread of its own.

Why a thread: progress is reported from the data path (the stage that moves the bytes), and
an API call there makes the backup wait on the Prefect server — measured, each update cost a
new client (≈ 20 ms of CPU loading the CA bundle) and a round trip while the disk's writer
stood still. The publisher keeps only the latest percentage, so a slow server gets fewer,
newer updates and never slows a backup or a restore.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast
from uuid import UUID

from prefect.artifacts import create_progress_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactUpdate

from bingobackup.jobs.progress import ProgressTracker
from bingobackup.watchdog import Watchdog

log = logging.getLogger("bingobackup.progress")


class ArtifactPublisher:
    """Sends the latest percentage to a progress artifact, one update at a time."""

    def __init__(self, key: str, description: str) -> None:
        self._key, self._description = key, description
        self._changed = threading.Condition()
        self._latest: float | None = None
        self._closed = False
        self._warned = False
        # The run's settings (API URL, profile) live in context variables: carry them over.
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name="progress-artifact", daemon=True
        )
        self._thread.start()

    def publish(self, percent: float) -> None:
        with self._changed:
            self._latest = percent
            self._changed.notify()

    def close(self) -> None:
        """Send what is left, then stop."""
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join()

    def _run(self) -> None:
        # Created here too, not in the run's thread: the run goes on while the server answers.
        artifact_id = self._create()
        with get_client(sync_client=True) as client:
            while True:
                with self._changed:
                    while self._latest is None and not self._closed:
                        self._changed.wait()
                    percent, self._latest = self._latest, None
                if percent is None:
                    return
                if artifact_id is None:
                    continue
                try:
                    client.update_artifact(artifact_id, ArtifactUpdate(data=percent))
                except Exception as exc:  # progress is for people: never fail the run over it
                    self._warn(exc)

    def _create(self) -> UUID | None:
        try:
            return cast(
                UUID,
                create_progress_artifact(
                    progress=0.0,
                    key=self._key,
                    description=self._description,
                    _sync=True,  # type: ignore[call-arg]  # a plain thread in a run's context
                ),
            )
        except Exception as exc:
            self._warn(exc)
            return None

    def _warn(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            log.warning("could not update the progress artifact: %s", exc)


@contextmanager
def progress_artifact(
    key: str, description: str, total_bytes: int, watchdog: Watchdog
) -> Iterator[ProgressTracker]:
    """A `ProgressTracker` whose reports go to a new progress artifact `key` of this run, and
    whose every update tells the run's watchdog that bytes move.

    Leaving the block waits for the last update to be sent: end it after the run's other
    closing calls, so that wait is already over."""
    publisher = ArtifactPublisher(key, description)
    try:
        yield ProgressTracker(total_bytes, publisher.publish, watchdog=watchdog)
    finally:
        publisher.close()
