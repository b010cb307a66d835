"""Every cloud resource a restore run creates, so that a failure can remove them all.

Resources are recorded the moment the cloud returns their id (before waiting on them), so
one that never becomes ready is still removed. What cannot be removed is named in the
run's report, never silently left behind.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Literal

from pydantic import BaseModel, ConfigDict

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.errors import CloudNotFoundError
from bingobackup.cloud.waiters import wait_for_instance, wait_for_volume

log = logging.getLogger("bingobackup.restore")

ResourceKind = Literal["instance", "volume", "image", "snapshot"]
# Removal order: a VM lets go of its volumes, an image of its snapshot.
_ORDER: tuple[ResourceKind, ...] = ("instance", "volume", "image", "snapshot")


class Created(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: ResourceKind
    resource_id: str
    what: str  # for people: "data disk web-data of VM web-restored"

    def describe(self) -> str:
        return f"{self.kind} {self.resource_id} ({self.what})"


class Ledger:
    """Thread-safe record of what a run created and has not yet removed or handed over."""

    def __init__(self) -> None:
        self._items: list[Created] = []
        self._lock = threading.Lock()

    def add(self, kind: ResourceKind, resource_id: str, what: str) -> None:
        with self._lock:
            self._items.append(Created(kind=kind, resource_id=resource_id, what=what))

    def forget(self, resource_id: str) -> None:
        """`resource_id` was removed, or is now the operator's (the restored VM and its disks)."""
        with self._lock:
            self._items = [i for i in self._items if i.resource_id != resource_id]

    @property
    def items(self) -> list[Created]:
        with self._lock:
            return list(self._items)

    def clean_up(self, client: BingoCloudClient, timeout: float = 300.0) -> list[str]:
        """Remove everything still recorded; returns the leftovers it could not remove, described."""
        leftovers: list[str] = []
        for kind in _ORDER:
            for item in [i for i in self.items if i.kind == kind]:
                try:
                    _remove(client, item, timeout)
                    self.forget(item.resource_id)
                except Exception as exc:
                    log.warning("could not remove %s: %s", item.describe(), exc)
                    leftovers.append(f"{item.describe()}: {exc}")
        return leftovers


def _remove(client: BingoCloudClient, item: Created, timeout: float) -> None:
    with contextlib.suppress(CloudNotFoundError):
        if item.kind == "instance":
            client.terminate_instances([item.resource_id])
            wait_for_instance(client, item.resource_id, "terminated", timeout=timeout)
        elif item.kind == "volume":
            volume = client.get_volume(item.resource_id)
            if volume.attachments:
                client.detach_volume(item.resource_id, force=True)
                wait_for_volume(client, item.resource_id, "available", timeout=timeout)
            if volume.status == "creating":
                wait_for_volume(client, item.resource_id, "available", timeout=timeout)
            client.delete_volume(item.resource_id)
        elif item.kind == "image":
            client.deregister_image(item.resource_id)
        else:
            client.delete_snapshot(item.resource_id)
