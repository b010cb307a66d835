"""Power off during backup (guide table 2): stop the VM for its snapshot, start it again.

The VM is started again as soon as its disks are captured (the snapshots are complete),
not after the long copy, and also when the snapshot step fails: a backup must never leave
a production VM stopped. A VM that was not running is left as it was.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.waiters import wait_for_instance

log = logging.getLogger("bingobackup.backup")

DEFAULT_POWER_TIMEOUT = 600.0


@contextlib.contextmanager
def powered_off(
    client: BingoCloudClient, instance_id: str, *, timeout: float = DEFAULT_POWER_TIMEOUT
) -> Iterator[bool]:
    """Inside: the VM is stopped. Yields whether this call stopped it (and will start it)."""
    state = client.get_instance(instance_id).state.name
    if state not in ("running", "pending"):
        # Stopped already (or stopping): nothing to undo afterwards.
        if state == "stopping":
            wait_for_instance(client, instance_id, "stopped", timeout=timeout)
        yield False
        return
    log.info("stopping VM %s for its snapshot (power_off)", instance_id)
    try:
        client.stop_instances([instance_id])
        wait_for_instance(client, instance_id, "stopped", timeout=timeout)
        yield True
    finally:
        log.info("starting VM %s again", instance_id)
        start_again(client, instance_id, timeout=timeout)


def start_again(client: BingoCloudClient, instance_id: str, *, timeout: float) -> None:
    """Start a VM this job stopped; waits for it to stop first if the stop is still under way."""
    state = client.get_instance(instance_id).state.name
    if state == "stopping":
        wait_for_instance(client, instance_id, "stopped", timeout=timeout)
        state = "stopped"
    if state == "stopped":
        client.start_instances([instance_id])
    wait_for_instance(client, instance_id, "running", timeout=timeout)
