"""Submit a job's VMs (or a VM's disks) only when the job's limits have room for them.

Why not leave it to Prefect's tag limits: a task run waits for its tag slot inside a thread of
the run's ThreadPoolTaskRunner. With more VMs than threads, every thread ended up waiting for
a slot held by a VM whose disk tasks could no longer get a thread, and the run hung for good
(the 50-VM hang, PrefectHQ/prefect#17060). Here the thread that waits for the results counts
the slots itself and submits a task only once every limit it is tagged with has room, so the
task finds its slot free (the tags stay: the server still enforces them and the UI shows
them), and the threads a run uses are bounded by what its limits admit, not by its size.

Waiting happens here too, so this is where the run's watchdog is checked: a run that stands
still for the job's `stall_minutes` is stopped and what it waited on is named.
"""

from __future__ import annotations

import queue
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from prefect.futures import PrefectFuture

from bingobackup.watchdog import RunStalled, Watchdog

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Finished(Generic[T, R]):
    """One item's end: its task's result, or the error it raised (or why it never started)."""

    item: T
    result: R | None = None
    error: BaseException | None = None


def run_admitted(
    items: Sequence[T],
    *,
    limits: Mapping[str, int],
    keys: Callable[[T], Iterable[str]],
    submit: Callable[[T], PrefectFuture[R]],
    describe: Callable[[T], str],
    watchdog: Watchdog,
) -> list[Finished[T, R]]:
    """Run every item's task, at most `limits[key]` at once for each key an item names; the
    items' ends in the order given. Items a limit holds back wait in order, and an item whose
    limits have room goes ahead of them (a busy node does not hold up the VMs of another).

    Once the watchdog trips, nothing more is submitted (those items end with its reason),
    the running tasks are waited for (the watchdog's `cancel` stops their pipelines), and if
    they still have not ended after one more `stall_minutes`, RunStalled is raised.
    """
    item_keys = [[key for key in keys(item) if key in limits] for item in items]
    pending = list(range(len(items)))
    running: dict[int, PrefectFuture[R]] = {}
    in_use: Counter[str] = Counter()
    done: queue.Queue[int] = queue.Queue()
    finished: dict[int, Finished[T, R]] = {}
    stopped_at: float | None = None  # when the watchdog tripped: the stopped tasks get one more limit

    while pending or running:
        if watchdog.tripped is not None:
            for index in pending:
                finished[index] = Finished(items[index], error=RunStalled(watchdog.tripped))
            pending = []
        held_back = []
        for index in pending:
            if all(in_use[key] < limits[key] for key in item_keys[index]):
                in_use.update(item_keys[index])
                future = submit(items[index])
                running[index] = future
                future.add_done_callback(_announce(done, index))
            else:
                held_back.append(index)
        pending = held_back
        if not running:
            break  # only when the watchdog emptied `pending`: with nothing running, every limit has room
        try:
            index = done.get(timeout=watchdog.poll_seconds)
        except queue.Empty:
            stopped_at = _check_for_stall(watchdog, [describe(items[i]) for i in sorted(running)], stopped_at)
            continue
        watchdog.beat()
        future = running.pop(index)
        in_use.subtract(item_keys[index])
        try:
            finished[index] = Finished(items[index], result=future.result())
        except Exception as error:
            finished[index] = Finished(items[index], error=error)
    return [finished[index] for index in range(len(items))]


def _check_for_stall(watchdog: Watchdog, waiting_on: list[str], stopped_at: float | None) -> float | None:
    """Ask the watchdog while nothing ends; returns when it tripped (None while it has not).
    RunStalled is raised once the stopped tasks outlast one more `stall_minutes`."""
    try:
        watchdog.check(waiting_on)
    except RunStalled as stalled:
        stopped_at = stopped_at or time.monotonic()
        if time.monotonic() - stopped_at >= watchdog.limit_seconds:
            raise RunStalled(
                f"{stalled} These did not stop when told to and were left running: {'; '.join(waiting_on)}."
            ) from None
    return stopped_at


def _announce(done: queue.Queue[int], index: int) -> Callable[[Any], None]:
    return lambda _future: done.put(index)
