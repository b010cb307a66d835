"""The per-disk writer the data mover feeds from several channel threads at once."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from bingobackup.crashpoints import crash_point
from bingobackup.format.constants import ZERO_LOCATION
from bingobackup.format.manifest import ChunkRef, DiskManifest
from bingobackup.format.zero import is_zero

DedupMode = Literal["agent", "server"]


class WriterPool(Protocol):
    """What a disk writer needs from its pool (`Pool` implements it; each kind's writer narrows
    `pool` to its own pool class). A protocol, so this module does not import `pool`."""

    @property
    def chunk_size(self) -> int: ...

    def chunk_digest(self, plaintext: bytes | bytearray | memoryview) -> str: ...

    def check_writer_lock(self) -> None: ...

    def save_manifest(self, manifest: DiskManifest) -> None: ...

    def writer_ended(self) -> None: ...


class WriterStats(BaseModel):
    """What one disk backup cost. bytes_read counts every chunk handed over (known, sent or
    zero), bytes_sent the plaintext that crossed to the pool, bytes_stored the new envelope
    bytes the pool kept (after dedup, compression and encryption)."""

    model_config = ConfigDict(frozen=True)

    bytes_read: int
    bytes_sent: int
    bytes_stored: int
    zero_bytes: int
    chunks_stored: int
    chunks_duplicate: int


class DiskWriter(ABC):
    """Writes one disk of one backup set. Thread-safe: `has`, `put_chunk` and `add_known` may
    run on many threads; the heavy work (hash, zstd, AES-GCM) runs outside any lock.

    Nothing is visible in the pool as a backup until `commit()` returns the manifest, and
    everything the manifest names is durable by then. `abort()` discards what it can (chunks a
    dedup pool already holds stay: they are shared and collected as garbage later)."""

    def __init__(self, pool: WriterPool, set_id: str, volume_id: str, size_bytes: int) -> None:
        if size_bytes < 0:
            raise ValueError("size_bytes must not be negative")
        self.pool = pool
        self.set_id = set_id
        self.volume_id = volume_id
        self.size_bytes = size_bytes
        self.chunk_size = pool.chunk_size
        self._lock = threading.Lock()
        self._refs: dict[int, ChunkRef] = {}
        self._state: Literal["open", "committed", "aborted"] = "open"
        self._read = self._sent = self._stored = self._zero = 0
        self._chunks_stored = self._chunks_duplicate = 0
        self.holds_pool_lock = False  # set by the pool that counted it in its backup lock

    # -- what the pool kinds implement ---------------------------------------------------
    @abstractmethod
    def has(self, digest: str) -> bool:
        """True when the pool already holds this chunk (agent-side dedup asks first)."""

    @abstractmethod
    def _store(self, offset: int, plaintext: bytes | bytearray, digest: str) -> tuple[int, str, bool]:
        """Stores one chunk: (stored_size, location, newly_stored)."""

    @abstractmethod
    def _known(self, digest: str) -> tuple[int, str]:
        """(stored_size, location) of a chunk the pool already holds."""

    @abstractmethod
    def _finish(self) -> None:
        """Makes this disk's chunks durable before the manifest is written."""

    @abstractmethod
    def _discard(self) -> None:
        """Removes what this writer wrote that nothing else uses."""

    def keep_unacknowledged(self, limit_bytes: int) -> None:  # noqa: B027 - see StandardDiskWriter
        """Keep up to `limit_bytes` of what was sent but is not yet durable, so that after a
        lost link the writer re-sends it and goes on (the job's resume buffer). Pools whose
        blob store already keeps every blob until it is durable (dedup packs) need nothing."""

    def settle(self) -> None:  # noqa: B027 - only pools that hold chunks back have work here
        """Makes every chunk stored so far durable without committing; may be called again
        after it raised (a lost link), so a resuming sink can retry it before `commit`."""

    # -- the mover's API -----------------------------------------------------------------
    def chunk_digest(self, plaintext: bytes | bytearray | memoryview) -> str:
        return self.pool.chunk_digest(plaintext)

    def put_chunk(
        self, offset: int, plaintext: bytes | bytearray, digest: str | None = None, mode: DedupMode = "agent"
    ) -> ChunkRef:
        """Stores the chunk at disk `offset`. mode "agent": the caller already asked `has` and
        sends only new chunks (a given digest is trusted); "server": every chunk is sent and the
        pool hashes it and drops duplicates itself."""
        self._check_open()
        length = len(plaintext)
        self._check_span(offset, length)
        if mode not in ("agent", "server"):
            raise ValueError(f"dedup mode {mode!r} is not 'agent' or 'server'")
        if is_zero(plaintext):
            with self._lock:
                self._read += length
                self._zero += length
            return ChunkRef(offset=offset, length=length, digest="", stored_size=0, location=ZERO_LOCATION)
        if digest is None or mode == "server":
            digest = self.chunk_digest(plaintext)
        stored_size, location, new = self._store(offset, plaintext, digest)
        ref = ChunkRef(
            offset=offset, length=length, digest=digest, stored_size=stored_size, location=location
        )
        with self._lock:
            self._read += length
            self._sent += length
            if new:
                self._stored += stored_size
                self._chunks_stored += 1
            else:
                self._chunks_duplicate += 1
            self._refs[offset] = ref
        crash_point("pool.chunk-stored")
        return ref

    def add_known(self, offset: int, length: int, digest: str) -> ChunkRef:
        """Records a chunk `has` said the pool holds, without sending it (agent-side dedup)."""
        self._check_open()
        self._check_span(offset, length)
        stored_size, location = self._known(digest)
        ref = ChunkRef(
            offset=offset, length=length, digest=digest, stored_size=stored_size, location=location
        )
        with self._lock:
            self._read += length
            self._chunks_duplicate += 1
            self._refs[offset] = ref
        return ref

    def commit(self) -> DiskManifest:
        with self._lock:
            self._check_open()
            self._state = "committed"
            chunks = tuple(self._refs[offset] for offset in sorted(self._refs))
        try:
            self._finish()
            manifest = DiskManifest(
                set_id=self.set_id,
                volume_id=self.volume_id,
                size_bytes=self.size_bytes,
                chunk_size=self.chunk_size,
                chunks=chunks,
            )
            self.pool.check_writer_lock()
            crash_point("pool.before-manifest")
            self.pool.save_manifest(manifest)
        except BaseException:
            self._discard()
            raise
        finally:
            self._release_pool_lock()
        return manifest

    def abort(self) -> None:
        with self._lock:
            if self._state != "open":
                return
            self._state = "aborted"
        try:
            self._discard()
        finally:
            self._release_pool_lock()

    def _release_pool_lock(self) -> None:
        if self.holds_pool_lock:
            self.holds_pool_lock = False
            self.pool.writer_ended()

    # -- counters ------------------------------------------------------------------------
    @property
    def bytes_read(self) -> int:
        return self._read

    @property
    def bytes_sent(self) -> int:
        return self._sent

    @property
    def bytes_stored(self) -> int:
        return self._stored

    def stats(self) -> WriterStats:
        with self._lock:
            return WriterStats(
                bytes_read=self._read,
                bytes_sent=self._sent,
                bytes_stored=self._stored,
                zero_bytes=self._zero,
                chunks_stored=self._chunks_stored,
                chunks_duplicate=self._chunks_duplicate,
            )

    # -- checks --------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._state != "open":
            raise ValueError(f"the writer of {self.set_id}/{self.volume_id} is {self._state}; open a new one")

    def _check_span(self, offset: int, length: int) -> None:
        if offset < 0 or offset % self.chunk_size or offset >= max(self.size_bytes, 1):
            raise ValueError(
                f"chunk offset {offset} is not a multiple of the pool's chunk size {self.chunk_size} "
                f"inside the {self.size_bytes}-byte disk"
            )
        expected = min(self.chunk_size, self.size_bytes - offset)
        if length != expected:
            raise ValueError(f"the chunk at offset {offset} has {length} bytes; expected {expected}")
