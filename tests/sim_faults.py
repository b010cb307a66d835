"""Faults injected into a running simulator through its admin API (`PUT`/`DELETE …/faults`),
one helper for every test that needs a lossy, throttled or failing cloud."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bingobackup.sim.server import RunningSimulator


def set_faults(sim: RunningSimulator, faults: dict[str, Any] | None) -> None:
    """Replace the simulator's faults with `faults`; None clears them."""
    url = f"{sim.admin_url.rstrip('/')}/faults"
    if faults is None:
        request = urllib.request.Request(url, method="DELETE")
    else:
        request = urllib.request.Request(
            url, data=json.dumps(faults).encode(), method="PUT", headers={"Content-Type": "application/json"}
        )
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200


@contextmanager
def injected_faults(sim: RunningSimulator, faults: dict[str, Any]) -> Iterator[None]:
    """`faults` for the duration of the block, cleared afterwards whatever happens in it."""
    set_faults(sim, faults)
    try:
        yield
    finally:
        set_faults(sim, None)
