"""The shape of an API action handler."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bingobackup.sim.cloud import SimCloud
    from bingobackup.sim.query import Params

# (cloud, request parameters) → the response body (see xml.render_response); runs under the lock.
Handler = Callable[["SimCloud", "Params"], dict[str, Any]]
