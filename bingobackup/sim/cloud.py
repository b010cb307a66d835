"""The running simulated cloud: state, timed transitions, copy-on-write files, space accounting.

Transitions (pending → running, attaching → attached, …) are stored with a due time and
applied under the lock, both lazily before every API call and by a ticker thread, so a
device link appears on time even when nobody polls the API. Snapshots and volumes from
snapshots share their files copy-on-write (layers.py): made under the lock in O(metadata),
they are completed / available at the next look.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from bingobackup.sim.errors import SimApiError
from bingobackup.sim.layers import allocated_once, freeze
from bingobackup.sim.state import (
    InstanceRec,
    SnapshotRec,
    StateStore,
    Transition,
    VolumeRec,
    link_device,
    unlink_device,
)
from bingobackup.sim.stats import StatsRecorder
from bingobackup.sparse import copy_sparse

log = logging.getLogger("bingobackup.sim")

_TICK_MAX = 1.0


class SimCloud:
    def __init__(self, store: StateStore, transition_delay: float = 0.2) -> None:
        self.store = store
        self.transition_delay = transition_delay
        self.stats = StatsRecorder()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._ticker = threading.Thread(target=self._tick_loop, name="sim-ticker", daemon=True)

    @property
    def state(self):
        return self.store.state

    @property
    def lock(self) -> threading.RLock:
        return self.store.lock

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Finish what a previous run left half done, then start the ticker."""
        with self.lock:
            self.settle()
            for volume in self.state.volumes.values():
                if volume.attachment is not None and volume.attachment.status == "attached":
                    link_device(self.store, volume)
                if volume.status == "creating" and volume.transition is None:  # left by a copying version
                    self.fill_from_snapshot(volume)
            for snap in self.state.snapshots.values():
                if snap.status == "pending" and snap.transition is None:
                    self.take_snapshot(snap)
        self._ticker.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._ticker.is_alive():
            self._ticker.join(timeout=5)
        with self.lock:
            self.store.save()

    def transition(self, to: str, delay: float | None = None) -> Transition:
        """`to` after `delay` seconds (default: the simulator's transition delay)."""
        self._wake.set()
        return Transition(to=to, due=time.time() + (self.transition_delay if delay is None else delay))

    def _tick_loop(self) -> None:
        while not self._stopping.is_set():
            with self.lock:
                self.settle()
                due = self._next_due()
            wait = _TICK_MAX if due is None else max(0.0, min(_TICK_MAX, due - time.time()))
            self._wake.wait(wait)
            self._wake.clear()

    def _next_due(self) -> float | None:
        dues = [i.transition.due for i in self.state.instances.values() if i.transition]
        dues += [s.transition.due for s in self.state.snapshots.values() if s.transition]
        for volume in self.state.volumes.values():
            if volume.transition:
                dues.append(volume.transition.due)
            if volume.attachment and volume.attachment.transition:
                dues.append(volume.attachment.transition.due)
        return min(dues, default=None)

    # ------------------------------------------------------------------ transitions

    def settle(self) -> None:
        """Apply every transition that is due (caller holds the lock); saves if anything changed."""
        now = time.time()
        changed = False
        for instance in list(self.state.instances.values()):
            if instance.transition and instance.transition.due <= now:
                instance.state = instance.transition.to
                instance.transition = None
                if instance.state == "terminated":
                    self._release_volumes(instance)
                changed = True
        for volume in list(self.state.volumes.values()):
            if volume.transition and volume.transition.due <= now:
                volume.status = volume.transition.to
                volume.transition = None
                changed = True
            attachment = volume.attachment
            if attachment and attachment.transition and attachment.transition.due <= now:
                if attachment.transition.to == "attached":
                    attachment.status = "attached"
                    attachment.transition = None
                    link_device(self.store, volume)
                else:
                    self._finish_detach(volume)
                changed = True
        for snap in self.state.snapshots.values():
            if snap.transition and snap.transition.due <= now:
                snap.status = "completed" if snap.transition.to == "completed" else "error"
                snap.transition = None
                changed = True
        if changed:
            self.store.save()

    def _finish_detach(self, volume: VolumeRec) -> None:
        attachment = volume.attachment
        if attachment is None:
            return
        unlink_device(self.store, volume, attachment.instance_id)
        volume.attachment = None
        volume.status = "available"

    def begin_detach(self, volume: VolumeRec) -> None:
        attachment = volume.attachment
        if attachment is None or attachment.status == "detaching":
            return
        self.stats.detached(attachment.instance_id, volume.source_node_id, volume.source_instance_id)
        attachment.status = "detaching"
        attachment.transition = self.transition("detached")

    def _release_volumes(self, instance: InstanceRec) -> None:
        """A terminated VM deletes its delete-on-termination volumes and lets go of the others."""
        for volume in list(self.state.volumes.values()):
            attachment = volume.attachment
            if attachment is None or attachment.instance_id != instance.instance_id:
                continue
            delete = attachment.delete_on_termination
            if attachment.status != "detaching":
                self.stats.detached(attachment.instance_id, volume.source_node_id, volume.source_instance_id)
            self._finish_detach(volume)
            if delete:
                self.delete_volume_files(volume.volume_id)
                del self.state.volumes[volume.volume_id]

    # ------------------------------------------------------------------ files and space

    def delete_volume_files(self, volume_id: str) -> None:
        self.store.volume_path(volume_id).unlink(missing_ok=True)

    def storage_used(self, storage_id: str) -> int:
        """Reserved space plus the files' allocated bytes, a file shared copy-on-write counted once."""
        storage = self.state.storages[storage_id]
        paths = [
            self.store.volume_path(v.volume_id)
            for v in self.state.volumes.values()
            if v.storage_id == storage_id
        ]
        paths += [
            self.store.snapshot_path(s.snapshot_id)
            for s in self.state.snapshots.values()
            if s.storage_id == storage_id
        ]
        return storage.reserved_used + allocated_once(paths)

    def check_space(self, storage_id: str, size_bytes: int) -> None:
        storage = self.state.storages[storage_id]
        free = storage.space_max - self.storage_used(storage_id)
        if size_bytes > free:
            raise SimApiError(
                "InsufficientStorageCapacity",
                f"The storage '{storage_id}' has {free} bytes free, not enough for a volume of "
                f"{size_bytes} bytes; choose another storage or free space",
            )

    # ------------------------------------------------------------------ copy-on-write files

    # The file operations take no time, so a snapshot is pending, and a volume from it creating,
    # only until the next look, as with a copy-on-write cloud and a small disk.

    def take_snapshot(self, snap: SnapshotRec) -> None:
        """Freeze the volume's file as the snapshot's (caller holds the lock): completed, or in
        error if the volume has no file."""
        try:
            freeze(self.store.volume_path(snap.volume_id), self.store.snapshot_path(snap.snapshot_id))
            outcome = "completed"
        except OSError:
            log.exception("simulator: snapshot %s of %s failed", snap.snapshot_id, snap.volume_id)
            outcome = "error"
        snap.transition = self.transition(outcome, delay=0)

    def fill_from_snapshot(self, volume: VolumeRec) -> None:
        """Give a new volume its snapshot's bytes (caller holds the lock): the snapshot's file
        itself when the sizes match, a sparse copy grown to size when the volume is larger."""
        source = self.store.snapshot_path(volume.snapshot_id)
        path = self.store.volume_path(volume.volume_id)
        try:
            if source.stat().st_size == volume.size_bytes:
                freeze(source, path)
            else:  # growing a shared file would grow the snapshot too
                copy_sparse(source, path)
                os.truncate(path, volume.size_bytes)
            outcome = "available"
        except OSError:
            log.exception("simulator: volume %s from %s failed", volume.volume_id, volume.snapshot_id)
            outcome = "error"
        volume.transition = self.transition(outcome, delay=0)
