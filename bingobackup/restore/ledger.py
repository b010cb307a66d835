"""Every cloud resource a restore run creates, so that a failure can remove them all.

Resources are recorded the moment the cloud returns their id (before waiting on them), so
one that never becomes ready is still removed. What cannot be removed is named in the
run's report, never silently left behind.

A run can die where no `finally` runs (SIGKILL, a rebooted backup host): a ledger given a
`LedgerKeeper` also stores what it holds there after every change, with the process that
wrote it, and the job's next run removes what a dead process of this host left
(`remove_left_by_dead_runs`) before it plans: a half-made VM, its snapshot and image, the
volumes written. A process may die between a create call and its record (another disk's
thread reaching a crash, the kill arriving mid-call): a volume is recorded as intended,
with its ClientToken, before the call, and the cleanup repeats the call with that token to
learn its id (the cloud answers with the volume it made, or makes it now: either is
removed); snapshots of recorded volumes, images of those snapshots and VMs launched from
those images are looked up, as only the dead run can have made them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict
from typing_extensions import TypedDict  # pydantic reads TypedDict fields from it on Python < 3.12

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.errors import CloudError, CloudNotFoundError
from bingobackup.cloud.waiters import wait_for_instance, wait_for_volume
from bingobackup.processes import pid_gone, process_space

log = logging.getLogger("bingobackup.restore")

ResourceKind = Literal["instance", "volume", "image", "snapshot"]
# Removal order: a VM lets go of its volumes, an image of its snapshot.
_ORDER: tuple[ResourceKind, ...] = ("instance", "volume", "image", "snapshot")


class VolumeCreate(TypedDict):
    """`create_volume`'s arguments for a restored disk (without its token)."""

    size_bytes: int
    storage_id: str
    name: str
    node_id: str | None


class Created(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: ResourceKind
    resource_id: str  # "" while only intended: the create call's reply not yet seen
    what: str  # for people: "data disk web-data of VM web-restored"
    client_token: str = ""  # the create call's token
    create: VolumeCreate | None = None  # an intended volume: how to ask the cloud again (with the token)

    def describe(self) -> str:
        return f"{self.kind} {self.resource_id} ({self.what})"


class LedgerRecord(BaseModel):
    """What one run's restore of one VM holds, as its keeper stores it."""

    model_config = ConfigDict(frozen=True)

    job: str
    vm: str  # the VM restored (its new name), or whose disks are restored
    writer: str  # `<process space>|<pid>` of the process that created them
    items: tuple[Created, ...] = ()

    def writer_gone(self) -> bool:
        """The writer was a process of this host (process space) that no longer runs."""
        space, _, pid = self.writer.rpartition("|")
        return space == process_space() and pid.isdigit() and pid_gone(int(pid))


class LedgerKeeper(Protocol):
    """Durable and shared: a record must outlive the process that wrote it."""

    def save(self, record: LedgerRecord) -> None:
        """Store `record` in place of the one of the same job, VM and writer; none with no items."""

    def of_job(self, job: str) -> list[LedgerRecord]: ...


class Ledger:
    """Thread-safe record of what a run created and has not yet removed or handed over; with a
    `keeper`, stored there after every change (the change returns once it is stored)."""

    def __init__(self, keeper: LedgerKeeper | None = None, job: str = "", vm: str = "") -> None:
        self._items: list[Created] = []
        self._lock = threading.Lock()
        self._keeper = keeper
        self._record = LedgerRecord(job=job, vm=vm, writer=f"{process_space()}|{os.getpid()}")

    def _kept(self) -> None:
        if self._keeper is not None:  # under the lock: the keeper sees the changes in order
            self._keeper.save(self._record.model_copy(update={"items": tuple(self._items)}))

    def intend_volume(self, client_token: str, create: VolumeCreate, what: str) -> None:
        """Before `create_volume(**create, client_token=client_token)`: a process that dies
        before `add` still leaves enough for `remove_left_by_dead_runs` to find the volume."""
        with self._lock:
            self._items.append(
                Created(kind="volume", resource_id="", what=what, client_token=client_token, create=create)
            )
            self._kept()

    def add(self, kind: ResourceKind, resource_id: str, what: str, client_token: str = "") -> None:
        """`resource_id` was created (by the call with `client_token`, replacing its intent)."""
        with self._lock:
            if client_token:
                self._items = [i for i in self._items if i.client_token != client_token or i.resource_id]
            self._items.append(
                Created(kind=kind, resource_id=resource_id, what=what, client_token=client_token)
            )
            self._kept()

    def forget(self, resource_id: str) -> None:
        """`resource_id` was removed, or is now the operator's (the restored VM and its disks)."""
        with self._lock:
            before = len(self._items)
            self._items = [i for i in self._items if i.resource_id != resource_id]
            if len(self._items) != before:
                self._kept()

    @property
    def items(self) -> list[Created]:
        with self._lock:
            return list(self._items)

    def clean_up(self, client: BingoCloudClient, timeout: float = 300.0) -> list[str]:
        """Remove everything still recorded; returns the leftovers it could not remove, described.
        An intent whose call failed in this process is dropped (the call's own retries asked)."""
        with self._lock:
            self._items = [i for i in self._items if i.resource_id]
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


def remove_left_by_dead_runs(
    client: BingoCloudClient, keeper: LedgerKeeper, job: str, timeout: float = 300.0
) -> tuple[list[str], list[str]]:
    """Removes what killed runs of restore job `job` on this host left in the cloud (their
    records in `keeper`); (removed, could not remove), described. Records of live processes,
    or of other hosts' (whose liveness this host cannot see), are left alone."""
    removed: list[str] = []
    failed: list[str] = []
    for record in keeper.of_job(job):
        if not record.writer_gone():
            continue
        ledger = Ledger()
        try:
            items = _made_by(client, record.items)
        except Exception as exc:  # the cloud did not answer: the record stays for the next run
            log.warning("could not look up what a killed run of restore %s made: %s", job, exc)
            failed.append(f"what a killed run made for {record.vm}: {exc}")
            continue
        for item in items:
            ledger.add(item.kind, item.resource_id, item.what)
        failed += ledger.clean_up(client, timeout)
        left = {i.resource_id for i in ledger.items}
        removed += [i.describe() for i in items if i.resource_id not in left]
        keeper.save(record.model_copy(update={"items": tuple(ledger.items)}))
    return removed, failed


def _made_by(client: BingoCloudClient, items: tuple[Created, ...]) -> list[Created]:
    """Everything a dead run made, from its record: intended volumes asked for again with
    their tokens, then what only it can have made from what it made (see the docstring)."""
    made = [i for i in items if i.resource_id]
    for intent in (i for i in items if not i.resource_id and i.create is not None):
        assert intent.create is not None
        try:
            volume = client.create_volume(**intent.create, client_token=intent.client_token)
        except CloudError as error:
            if error.code == "IdempotentParameterMismatch":  # made and deleted since: nothing to remove
                continue
            raise
        made.append(Created(kind="volume", resource_id=volume.volume_id, what=intent.what))
    known = {i.resource_id for i in made}

    def found(kind: ResourceKind, resource_id: str, what: str) -> None:
        if resource_id not in known:
            known.add(resource_id)
            made.append(Created(kind=kind, resource_id=resource_id, what=what))

    for volume_id in [i.resource_id for i in made if i.kind == "volume"]:
        for snapshot in client.describe_snapshots(filters={"volume-id": volume_id}):
            found("snapshot", snapshot.snapshot_id, f"snapshot of restored volume {volume_id}")
    snapshots = {i.resource_id for i in made if i.kind == "snapshot"}
    for image in client.describe_images():
        if image.root_snapshot_id in snapshots or image.name.rpartition(":")[2] in snapshots:
            found("image", image.image_id, f"image of snapshot {image.root_snapshot_id}")
    images = {i.resource_id for i in made if i.kind == "image"}
    for instance in client.describe_instances():
        if instance.image_id in images and instance.state.name not in ("terminated", "shutting-down"):
            found("instance", instance.instance_id, f"VM {instance.name} launched from a restored disk")
    return made
