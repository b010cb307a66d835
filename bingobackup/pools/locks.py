"""Pool locks: who uses a pool right now, so garbage collection never deletes what they need.

A lock is a small JSON blob `locks/<lock id>.<refresh number>` that a backup writer, a set
deletion or a garbage collection puts when it starts, renews every `REFRESH_SECONDS` (a new
blob with the next number, then the previous one deleted: object storage cannot replace a
blob) and deletes when it ends. One whose newest blob was refreshed more than
`STALE_SECONDS` ago, or whose process on this very host no longer runs, belongs to a
process that died (kill -9, a lost host) and is ignored (restic's stale locks). Works on every store with put/list/delete: local directories and
object storage alike, where nothing can be touched in place.

How garbage collection uses them (docs/format.md, "Garbage collection"): blobs it may delete
are first named in a condemned list; they go only once every lock that was live when that
list was written is gone, so no writer that could have chosen to reuse them still runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Literal

from bingobackup.format.constants import LOCKS
from bingobackup.processes import pid_gone, process_space
from bingobackup.storage.base import BlobStore
from bingobackup.storage.errors import BlobNotFoundError, PoolError

# restic's figures: refreshed every 5 minutes, stale after 30 without a refresh. Clocks of
# the hosts sharing a pool must agree to well within STALE_SECONDS.
REFRESH_SECONDS = 300.0
STALE_SECONDS = 1800.0

LockKind = Literal["backup", "delete", "gc", "repack"]
log = logging.getLogger("bingobackup.pools")


@dataclass(frozen=True)
class LockRecord:
    lock_id: str
    kind: str
    host: str
    pid: int
    started_at: float
    refreshed_at: float
    key: str
    process_space: str = ""  # where `pid` means something (process_space)

    def describe(self) -> str:
        return f"{self.kind} on {self.host} (pid {self.pid})"


def _lock_key(lock_id: str, number: int) -> str:
    return f"{LOCKS}/{lock_id}.{number:010d}"


def read_locks(store: BlobStore) -> list[LockRecord]:
    """The newest blob of every lock in the pool, stale ones included."""
    newest: dict[str, LockRecord] = {}
    for info in store.list(f"{LOCKS}/"):
        try:
            raw = json.loads(store.get(info.key))
            record = LockRecord(
                lock_id=str(raw["lock_id"]),
                kind=str(raw["kind"]),
                host=str(raw["host"]),
                pid=int(raw["pid"]),
                started_at=float(raw["started_at"]),
                refreshed_at=float(raw["refreshed_at"]),
                key=info.key,
                process_space=str(raw.get("process_space", "")),
            )
        except BlobNotFoundError:
            continue  # refreshed or released while we listed
        except (ValueError, KeyError, TypeError):
            log.warning("pool %s: lock blob %s is not readable; ignored", store.name, info.key)
            continue
        known = newest.get(record.lock_id)
        if known is None or record.refreshed_at > known.refreshed_at:
            newest[record.lock_id] = record
    return list(newest.values())


def _process_gone(lock: LockRecord) -> bool:
    """True for a lock of a process in this host's process space that no longer runs (as
    restic checks on the same host)."""
    if not lock.process_space or lock.process_space != process_space():
        return False
    return pid_gone(lock.pid)


def is_stale(lock: LockRecord, now: float) -> bool:
    return now - lock.refreshed_at >= STALE_SECONDS or _process_gone(lock)


def live_locks(store: BlobStore, now: float | None = None) -> list[LockRecord]:
    """Locks refreshed within STALE_SECONDS whose process, when on this host, still runs."""
    now = time.time() if now is None else now
    return [lock for lock in read_locks(store) if not is_stale(lock, now)]


def remove_stale_locks(store: BlobStore, now: float | None = None) -> int:
    """Deletes the blobs of locks no process refreshes any more; returns how many."""
    now = time.time() if now is None else now
    stale = {lock.lock_id for lock in read_locks(store) if is_stale(lock, now)}
    removed = 0
    for info in list(store.list(f"{LOCKS}/")):
        if info.key.removeprefix(f"{LOCKS}/").rpartition(".")[0] in stale:
            with contextlib.suppress(BlobNotFoundError):
                store.delete(info.key)
                removed += 1
    return removed


class PoolLock:
    """One process's lock on a pool, renewed on a daemon thread while held."""

    def __init__(self, store: BlobStore, kind: LockKind) -> None:
        self.store = store
        self.kind = kind
        self.lock_id = uuid.uuid4().hex
        self._number = 0
        self._started_at = 0.0
        self._refreshed_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()

    @property
    def stop_event(self) -> threading.Event:
        """Set once the lock is released: what a holder waiting for something waits on."""
        return self._stop

    @property
    def key(self) -> str:
        return _lock_key(self.lock_id, self._number)

    def _record(self, now: float) -> bytes:
        return json.dumps(
            {
                "lock_id": self.lock_id,
                "kind": self.kind,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "process_space": process_space(),
                "started_at": self._started_at,
                "refreshed_at": now,
            }
        ).encode()

    def acquire(self) -> PoolLock:
        now = time.time()
        self._started_at = now
        self.store.put(self.key, self._record(now))
        self._refreshed_at = now
        self._thread = threading.Thread(target=self._renew, name=f"lock-{self.store.name}", daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            try:
                self.refresh()
            except Exception as error:  # the holder checks `fresh()` before it commits
                log.warning("pool %s: the %s lock was not refreshed (%s)", self.store.name, self.kind, error)

    def refresh(self) -> None:
        with self._guard:
            if self._stop.is_set():
                return
            old = self.key
            now = time.time()
            self._number += 1
            try:
                self.store.put(self.key, self._record(now))
            except BaseException:
                self._number -= 1
                raise
            self._refreshed_at = now
            with contextlib.suppress(BlobNotFoundError):
                self.store.delete(old)

    def check_fresh(self) -> None:
        """Raises unless the lock was refreshed recently enough that garbage collection still
        counts it: past that, what this process wrote may already have been collected."""
        if time.time() - self._refreshed_at >= STALE_SECONDS:
            raise PoolError(
                f"pool {self.store.name}: this process's {self.kind} lock was last renewed "
                f"{time.time() - self._refreshed_at:.0f} s ago (the pool's storage refused it), so "
                "garbage collection may have removed data it wrote; nothing was committed. Check the "
                "storage and run it again"
            )

    def release(self) -> None:
        with self._guard:
            self._stop.set()
            key = self.key
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with contextlib.suppress(BlobNotFoundError):
            self.store.delete(key)

    def __enter__(self) -> PoolLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
