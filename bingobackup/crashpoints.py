"""Named crash points: a test has a process SIGKILL itself at a chosen step boundary.

One mechanism for every operation (backup, export, set deletion, garbage collection); the
reliability harness (tests/reliability, docs/reliability.md) and the GC tests use it.

- `BINGOBACKUP_CRASH_AT=<name>` kills the process the first time it reaches point `<name>`;
  `<name>#<n>` the n-th time (e.g. `pool.chunk-stored#5`: after the fifth chunk stored);
  `*#<n>` at the n-th point reached, whatever its name (a seeded random offset into a run).
- `BINGOBACKUP_CRASH_TRACE=<file>` appends the name of every point reached, one a line: a
  clean run traced tells the harness how many points a run passes, to draw offsets from.

Unset (always, outside tests), a point costs one dictionary lookup. The kill is SIGKILL of
the process itself: no `finally`, no atexit, no flush runs, as with `kill -9` or the OOM killer.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

CRASH_AT_ENV = "BINGOBACKUP_CRASH_AT"
CRASH_TRACE_ENV = "BINGOBACKUP_CRASH_TRACE"
ANY_POINT = "*"

_reached: Counter[str] = Counter()
_lock = threading.Lock()


def crash_point(name: str) -> None:
    """Kills this process here if the environment names this point (see the module docstring)."""
    wanted = os.environ.get(CRASH_AT_ENV)
    trace = os.environ.get(CRASH_TRACE_ENV)
    if not wanted and not trace:
        return
    with _lock:
        _reached[name] += 1
        _reached[ANY_POINT] += 1
        if trace:
            with open(trace, "a", encoding="utf-8") as out:
                out.write(name + "\n")
        if wanted and _is_due(wanted, name):
            os.kill(os.getpid(), signal.SIGKILL)


def _is_due(wanted: str, name: str) -> bool:
    point, _, count = wanted.partition("#")
    if point not in (name, ANY_POINT):
        return False
    return _reached[point] == (int(count) if count else 1)
