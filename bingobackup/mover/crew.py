"""A small group of threads that stop together: the first failure (or a cancel) stops all.

Backup and restore both run a few threads over bounded queues. Every blocking wait inside
them is a short timed wait on `should_stop()`, so a failure in one thread, or the caller's
`cancel` event, stops the rest within about `POLL_SECONDS`.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

POLL_SECONDS = 0.05


def thread_in_context(
    target: Callable[..., object], *args: object, name: str | None = None
) -> threading.Thread:
    """A daemon thread (not started) that runs `target` in a copy of the caller's context
    variables: its log lines then belong to the run the caller works for (a Prefect run's
    log is found through them), as the caller's own lines do."""
    return threading.Thread(
        target=contextvars.copy_context().run, args=(target, *args), name=name, daemon=True
    )


@dataclass
class Failure:
    error: BaseException
    offset: int | None


class Crew:
    def __init__(self, name: str, cancel: threading.Event | None = None) -> None:
        self._name = name
        self._cancel = cancel
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.failure: Failure | None = None
        # The disk offset each thread is working on, so a failure can name where it happened.
        self._offsets: dict[int, int] = {}

    def should_stop(self) -> bool:
        return self._stop.is_set() or (self._cancel is not None and self._cancel.is_set())

    @property
    def cancelled(self) -> bool:
        return self._cancel is not None and self._cancel.is_set()

    def working_on(self, offset: int) -> None:
        self._offsets[threading.get_ident()] = offset

    def fail(self, error: BaseException, offset: int | None = None) -> None:
        with self._lock:
            if self.failure is None:
                self.failure = Failure(error, offset)
        self._stop.set()

    def start(self, role: str, target: Callable[[], None]) -> None:
        def run() -> None:
            try:
                target()
            except BaseException as error:  # any failure must stop the others and reach the caller
                self.fail(error, self._offsets.get(threading.get_ident()))

        thread = thread_in_context(run, name=f"{self._name}-{role}")
        self._threads.append(thread)
        thread.start()

    def acquire(self, slots: threading.Semaphore) -> bool:
        """Take a slot; False when the crew is stopping instead."""
        while not slots.acquire(timeout=POLL_SECONDS):
            if self.should_stop():
                return False
        return not self.should_stop()

    def put(self, channel: queue.Queue[Any], item: Any) -> bool:
        """Put onto a bounded queue; False when the crew is stopping instead."""
        while not self.should_stop():
            try:
                channel.put(item, timeout=POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def get(self, channel: queue.Queue[Any]) -> tuple[bool, Any]:
        """(True, item) from the queue, or (False, None) when the crew is stopping."""
        while not self.should_stop():
            try:
                return True, channel.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
        return False, None

    def join(self, on_tick: Callable[[], None] | None = None, tick_seconds: float = 0.2) -> None:
        """Wait for every thread; call `on_tick` about every `tick_seconds` meanwhile."""
        for thread in self._threads:
            while thread.is_alive():
                thread.join(tick_seconds)
                if self.cancelled:
                    self._stop.set()
                if on_tick is not None:
                    on_tick()
