"""Waiting for BingoCloud state changes: snapshot completed, volume available/in-use,
instance running/stopped/terminated.

Polling with a deadline is the product's behaviour here (BingoCloud has no notifications);
every timeout names the resource, the state waited for and the last state seen. The first
polls come quickly and the interval grows to `poll`: most attaches and small snapshots finish
in well under a second, and a fixed interval would add up to one interval to every step
(measured: 0.2 s × 6 waits per disk was a third of a small VM's backup time), while a long
snapshot is still polled only every `poll` seconds. Each interval is 1.2× the last, so a
state change is seen at most a fifth of the time waited so far after it happened (with 1.5×,
a copy done after 1.0 s was seen at 1.5 s); that costs about seven more looks in the first
two seconds of a wait, none after.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, TypeVar

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.errors import CloudError, CloudWaitTimeout
from bingobackup.cloud.models import Instance, Snapshot, Volume

T = TypeVar("T")

FIRST_POLL = 0.02  # seconds before the second look
POLL_GROWTH = 1.2
DEFAULT_POLL = 2.0  # the longest interval between two looks


def _wait(
    resource: str,
    resource_id: str,
    wanted: str,
    fetch: Callable[[], T],
    state_of: Callable[[T], str],
    failed: Callable[[T], bool],
    *,
    timeout: float,
    poll: float,
) -> T:
    started = time.monotonic()
    deadline = started + timeout
    interval = min(FIRST_POLL, poll)
    while True:
        current = fetch()
        state = state_of(current)
        if state == wanted:
            return current
        if failed(current):
            raise CloudError(
                f"{resource} {resource_id} went to state {state!r} while waiting for {wanted!r}; "
                f"it will not get there. Check the {resource} in the BingoCloud console",
                code="UnexpectedState",
            )
        now = time.monotonic()
        if now >= deadline:
            raise CloudWaitTimeout(resource, resource_id, wanted, state, now - started)
        time.sleep(min(interval, deadline - now))
        interval = min(interval * POLL_GROWTH, poll)


def wait_for_snapshot(
    client: BingoCloudClient, snapshot_id: str, *, timeout: float, poll: float = DEFAULT_POLL
) -> Snapshot:
    """Until the snapshot is `completed`; a snapshot in `error` raises CloudError."""
    return _wait(
        "snapshot",
        snapshot_id,
        "completed",
        lambda: client.get_snapshot(snapshot_id),
        lambda s: str(s.status),
        lambda s: s.status == "error",
        timeout=timeout,
        poll=poll,
    )


def _volume_state(volume: Volume) -> str:
    # A volume reads `in-use` as soon as an attach starts; the guest sees the device only
    # once every attachment says `attached`, so that is part of the state we report.
    pending = [a.status for a in volume.attachments if a.status != "attached"]
    if volume.status == "in-use" and pending:
        return f"in-use (attachment {pending[0]})"
    return str(volume.status)


def wait_for_volume(
    client: BingoCloudClient,
    volume_id: str,
    status: Literal["available", "in-use"],
    *,
    timeout: float,
    poll: float = DEFAULT_POLL,
) -> Volume:
    """Until the volume has `status` (for `in-use`: with its attachment complete)."""
    return _wait(
        "volume",
        volume_id,
        status,
        lambda: client.get_volume(volume_id),
        _volume_state,
        lambda v: v.status in ("error", "deleting", "deleted"),
        timeout=timeout,
        poll=poll,
    )


_INSTANCE_DEAD_ENDS = {"running": {"terminated", "shutting-down"}, "stopped": {"terminated", "shutting-down"}}


def wait_for_instance(
    client: BingoCloudClient,
    instance_id: str,
    state: Literal["running", "stopped", "terminated"],
    *,
    timeout: float,
    poll: float = DEFAULT_POLL,
) -> Instance:
    """Until the instance is in `state`; a VM terminated while waiting for running/stopped raises."""
    dead_ends = _INSTANCE_DEAD_ENDS.get(state, set())
    return _wait(
        "instance",
        instance_id,
        state,
        lambda: client.get_instance(instance_id),
        lambda i: i.state.name,
        lambda i: i.state.name in dead_ends,
        timeout=timeout,
        poll=poll,
    )
