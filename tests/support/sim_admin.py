"""The running simulator's admin API (`…/_sim/faults`, `…/_sim/storages/ID`) for the tests
that need a lossy, throttled, failing or full cloud: one helper instead of one per test file.
(tests/support/sim.py's `admin` returns error statuses too, for the tests of the API itself.)"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bingobackup.sim.server import RunningSimulator


def sim_admin(sim: RunningSimulator, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """The decoded JSON reply of one admin call; an error status raises."""
    request = urllib.request.Request(
        f"{sim.admin_url.rstrip('/')}/{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def set_faults(sim: RunningSimulator, faults: dict[str, Any] | None) -> None:
    """Replace the simulator's faults with `faults`; None clears them."""
    if faults is None:
        sim_admin(sim, "DELETE", "faults")
    else:
        sim_admin(sim, "PUT", "faults", faults)


@contextmanager
def injected_faults(sim: RunningSimulator, faults: dict[str, Any]) -> Iterator[None]:
    """`faults` for the duration of the block, cleared afterwards whatever happens in it."""
    set_faults(sim, faults)
    try:
        yield
    finally:
        set_faults(sim, None)
