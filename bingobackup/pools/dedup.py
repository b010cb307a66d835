"""The dedup pool: content-addressed chunks shared by every backup in the pool.

Each chunk is one blob `chunks/<first 2 hex of id>/<id>` (256 fan-out directories, as
restic's `data/`). The agent-side index is an in-memory map id -> stored size, loaded once
from the listing and kept current by this process's writes; a chunk another host stored
since is caught by the existence check before writing (the pool drops it as a duplicate).
"""

from __future__ import annotations

import contextlib
import threading

from bingobackup.format.config import PoolConfig
from bingobackup.format.envelope import EnvelopeCodec
from bingobackup.format.manifest import ChunkRef
from bingobackup.pools.base import CHUNKS, BlobStore
from bingobackup.pools.errors import PoolError
from bingobackup.pools.pool import Pool
from bingobackup.pools.writer import DiskWriter


def chunk_key(digest: str) -> str:
    return f"{CHUNKS}/{digest[:2]}/{digest}"


class ChunkIndex:
    """Which chunks the pool holds. Lookups are a dict probe; each new id is written once even
    when several channels meet it at the same moment (the first claims it, the rest wait)."""

    def __init__(self, pool: DedupPool) -> None:
        self._pool = pool
        self._sizes: dict[str, int] | None = None
        self._inflight: dict[str, threading.Event] = {}
        self._lock = threading.RLock()

    def _loaded(self) -> dict[str, int]:
        if self._sizes is None:
            with self._lock:
                if self._sizes is None:
                    self._sizes = {
                        info.key.rsplit("/", 1)[1]: info.size for info in self._pool.store.list(f"{CHUNKS}/")
                    }
        return self._sizes

    def size_of(self, digest: str) -> int | None:
        return self._loaded().get(digest)

    def forget(self, digest: str) -> None:
        with self._lock:
            self._loaded().pop(digest, None)

    def store(self, digest: str, plaintext: bytes) -> tuple[int, bool]:
        """(stored size, newly stored)."""
        sizes = self._loaded()
        while True:
            size = sizes.get(digest)
            if size is not None:
                return size, False
            with self._lock:
                waiting = self._inflight.get(digest)
                if waiting is None:
                    claim = self._inflight[digest] = threading.Event()
            if waiting is not None:
                waiting.wait()
                continue  # the owner stored it (or failed, and we try ourselves)
            try:
                size, new = self._write(digest, plaintext)
                with self._lock:
                    sizes[digest] = size
                return size, new
            finally:
                with self._lock:
                    del self._inflight[digest]
                claim.set()

    def _write(self, digest: str, plaintext: bytes) -> tuple[int, bool]:
        store, key = self._pool.store, chunk_key(digest)
        if store.exists(key):  # another host or process stored it since we listed
            return store.stat(key).size, False
        sealed = self._pool.codec.seal(plaintext)
        # Durable by the writer's commit (flush), not yet: the next chunk is sealed meanwhile.
        store.put_soon(key, sealed.parts)
        return sealed.size, True


class DedupDiskWriter(DiskWriter):
    pool: DedupPool

    def has(self, digest: str) -> bool:
        return self.pool.index.size_of(digest) is not None

    def _store(self, offset: int, plaintext: bytes, digest: str) -> tuple[int, str, bool]:
        size, new = self.pool.index.store(digest, plaintext)
        return size, chunk_key(digest), new

    def _known(self, digest: str) -> tuple[int, str]:
        size = self.pool.index.size_of(digest)
        if size is None:
            raise PoolError(
                f"pool {self.pool.name} does not hold chunk {digest}; ask has() before add_known(), "
                "or send the chunk with put_chunk()"
            )
        return size, chunk_key(digest)

    def _finish(self) -> None:
        # Every chunk this disk stored, or found pending in this process, is durable after this
        # (rule 9 of the blob store), before the manifest naming them is written.
        try:
            self.pool.store.flush()
        except PoolError:
            raise
        except OSError as error:
            raise PoolError(
                f"pool {self.pool.name}: chunks of {self.volume_id} could not be made durable ({error}); "
                "check the pool's storage (mount, kernel log), then run the backup again. Nothing of "
                "this disk was committed"
            ) from error

    def _discard(self) -> None:
        # Stored chunks may already be shared with other backups (garbage collection frees
        # them); only wait until none of this pool's chunk writes is still in flight, so an
        # aborted backup leaves no temp file behind. A failure here was already reported.
        with contextlib.suppress(Exception):  # best effort: the backup is failing anyway
            self.pool.store.flush()


class DedupPool(Pool):
    kind = "dedup"

    def __init__(self, store: BlobStore, config: PoolConfig, codec: EnvelopeCodec) -> None:
        super().__init__(store, config, codec)
        self.index = ChunkIndex(self)

    def open_disk_writer(self, set_id: str, volume_id: str, size_bytes: int) -> DedupDiskWriter:
        self.manifest_key(set_id, volume_id)  # validates both ids before any work
        return DedupDiskWriter(self, set_id, volume_id, size_bytes)

    def _read_envelope(self, ref: ChunkRef) -> bytes:
        return self.store.get(ref.location or chunk_key(ref.digest))

    def collect_garbage(self) -> int:
        """Deletes chunks no manifest references; returns bytes freed. Run it only while no
        backup writes to this pool (a running backup's chunks have no manifest yet)."""
        referenced: set[str] = set()
        for set_id, volume_id in list(self.list_manifests()):
            referenced.update(ref.digest for ref in self.load_manifest(set_id, volume_id).chunks)
        freed = 0
        for info in list(self.store.list(f"{CHUNKS}/")):
            digest = info.key.rsplit("/", 1)[1]
            if digest not in referenced:
                self.store.delete(info.key)
                self.index.forget(digest)
                freed += info.size
        return freed
