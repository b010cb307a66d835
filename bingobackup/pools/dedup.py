"""The dedup pool: content-addressed chunks shared by every backup in the pool.

Format version 2 (new pools) stores chunks in packs (packs.py: `data/<2 hex>/<pack id>`, an
index at each pack's end); version 1 pools keep one blob per chunk, `chunks/<first 2 hex of
id>/<id>` (256 fan-out directories), and go on writing that way, so an older bingobackup
still reads them. Both layouts are read.

The agent-side index is an in-memory map id -> (stored size, location), loaded once from the
pool (chunk files listed; index blobs read, and the tails of packs no index blob describes)
and kept current by this process's writes. Each disk commit writes an index blob of the packs
it made durable; a load that finds many index blobs, or many packs none describes, writes one
index blob for them all and deletes the index blobs it replaces (never on storage that keeps
every blob). In
version 1, a chunk another host stored since is caught by an existence check before writing;
version 2 skips that per-chunk round trip, so two hosts backing up the same new data at the
same moment may each store it (as restic): both copies are valid, one is used per manifest,
and garbage collection keeps one of them where manifests can be rewritten (lifecycle/gc.py).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bingobackup.format.config import PoolConfig
from bingobackup.format.constants import CHUNKS, PACKED_FORMAT
from bingobackup.format.envelope import EnvelopeCodec
from bingobackup.format.errors import FormatError
from bingobackup.format.manifest import ChunkRef
from bingobackup.pools.condemned import condemned_keys
from bingobackup.pools.packs import (
    PackAssembler,
    PackEntry,
    PackRecord,
    decode_index_blob,
    list_index_blobs,
    list_packs,
    pack_location,
    read_pack_index,
    write_index_blob,
)
from bingobackup.pools.pool import Pool
from bingobackup.pools.writer import DiskWriter
from bingobackup.storage.base import BlobInfo, BlobStore
from bingobackup.storage.errors import BlobNotFoundError, PoolError

# Pack indexes read at once when the index loads: on object storage each is a round trip
# (tens of ms), so a pool of 10,000 packs took minutes one by one.
INDEX_READERS = 16
# A load merges the index blobs into one beyond this many (each disk commit writes one), or
# when more packs than this are in none of them (pools written before index blobs existed).
MAX_INDEX_BLOBS = 64
MAX_UNINDEXED_PACKS = 64

log = logging.getLogger("bingobackup.pools")


def chunk_key(digest: str) -> str:
    return f"{CHUNKS}/{digest[:2]}/{digest}"


@dataclass
class DescribedPacks:
    """What every listed pack holds, from the index blobs and the tails of packs none describes."""

    packs: dict[str, BlobInfo]  # in listing order
    entries: dict[str, tuple[PackEntry, ...]]
    read_blobs: list[str]  # the index blobs that were read and used
    unindexed: int  # packs read from their own tails

    def records(self) -> list[PackRecord]:
        return [PackRecord(key, info.size, self.entries[key]) for key, info in self.packs.items()]


def describe_packs(pool: DedupPool) -> DescribedPacks:
    store = pool.store
    packs = {info.key: info for info in list_packs(store)}
    blobs = list(list_index_blobs(store))
    described: dict[str, tuple[PackEntry, ...]] = {}
    read_blobs = []

    def read_index_blob(blob: BlobInfo) -> list[PackRecord] | None:
        try:
            return decode_index_blob(store, blob.key, store.get(blob.key))
        except BlobNotFoundError:
            return None  # merged away by another process while we listed
        except FormatError as error:  # the packs it describes are read from their own tails
            log.warning("%s", error)
            return None

    with ThreadPoolExecutor(max(1, min(INDEX_READERS, max(len(packs), len(blobs)))), "pack-index") as readers:
        for blob, records in zip(blobs, readers.map(read_index_blob, blobs), strict=True):
            if records is None:
                continue
            read_blobs.append(blob.key)
            for record in records:
                listed = packs.get(record.key)
                # A pack garbage collection deleted since is no longer listed: ignored.
                if listed is not None and listed.size == record.size:
                    described.setdefault(record.key, record.entries)
        rest = [info for key, info in packs.items() if key not in described]
        tails = readers.map(lambda info: _pack_tail(store, info), rest)
        for info, entries in zip(rest, tails, strict=True):
            if entries is None:
                del packs[info.key]  # deleted by garbage collection while we listed
                continue
            described[info.key] = tuple(entries)
    return DescribedPacks(packs, described, read_blobs, len(rest))


def _pack_tail(store: BlobStore, info: BlobInfo) -> list[PackEntry] | None:
    try:
        return read_pack_index(store, info)
    except BlobNotFoundError:
        return None


class ChunkIndex:
    """Which chunks the pool holds, and where. Lookups are a dict probe; each new id is written
    once even when several channels meet it at the same moment (the first claims it, the rest
    wait)."""

    def __init__(self, pool: DedupPool, *, avoid_condemned: bool = True) -> None:
        self._pool = pool
        self._avoid_condemned = avoid_condemned
        self._stored: dict[str, tuple[int, str]] | None = None
        self._inflight: dict[str, threading.Event] = {}
        self._lock = threading.RLock()

    def _loaded(self) -> dict[str, tuple[int, str]]:
        if self._stored is None:
            with self._lock:
                if self._stored is None:
                    self._stored = self._load()
        return self._stored

    def _load(self) -> dict[str, tuple[int, str]]:
        store = self._pool.store
        stored = {info.key.rsplit("/", 1)[1]: (info.size, info.key) for info in store.list(f"{CHUNKS}/")}
        described = describe_packs(self._pool)
        # In listing order: a chunk two packs hold (two hosts stored it at once) is found in
        # the same pack however the index was read.
        for key in described.packs:
            for entry in described.entries[key]:
                stored[entry.digest] = (entry.length, pack_location(key, entry.offset))
        if self._avoid_condemned:
            self._forget_condemned(stored, described)
        if described.unindexed > MAX_UNINDEXED_PACKS or (
            len(described.read_blobs) > MAX_INDEX_BLOBS and not store.keeps_every_blob
        ):
            self._pool.merge_index_blobs(described.records(), replaces=described.read_blobs)
        return stored

    def _forget_condemned(self, stored: dict[str, tuple[int, str]], described: DescribedPacks) -> None:
        """Drops chunks only blobs that garbage collection condemned hold (condemned.py): a
        writer stores such a chunk again rather than name a blob about to be deleted."""
        condemned = condemned_keys(self._pool.store)
        if not condemned:
            return
        for digest, (_, location) in list(stored.items()):
            if location.partition("@")[0] in condemned:
                del stored[digest]
        for key in described.packs:  # a copy in a pack not condemned (a repacked chunk) is used
            if key in condemned:
                continue
            for entry in described.entries[key]:
                stored.setdefault(entry.digest, (entry.length, pack_location(key, entry.offset)))

    def lookup(self, digest: str) -> tuple[int, str] | None:
        """(stored size, location) of a chunk the pool holds."""
        return self._loaded().get(digest)

    def store(self, digest: str, plaintext: bytes | bytearray) -> tuple[int, str, bool]:
        """(stored size, location, newly stored)."""
        stored = self._loaded()
        while True:
            known = stored.get(digest)
            if known is not None:
                return *known, False
            with self._lock:
                if digest in stored:  # its owner finished since we looked
                    continue
                waiting = self._inflight.get(digest)
                if waiting is None:
                    claim = self._inflight[digest] = threading.Event()
            if waiting is not None:
                waiting.wait()
                continue  # the owner stored it (or failed, and we try ourselves)
            try:
                size, location, new = self._write(digest, plaintext)
                with self._lock:
                    stored[digest] = (size, location)
                return size, location, new
            finally:
                with self._lock:
                    del self._inflight[digest]
                claim.set()

    def _write(self, digest: str, plaintext: bytes | bytearray) -> tuple[int, str, bool]:
        packs = self._pool.packs
        if packs is not None:
            return *packs.place(digest, plaintext), True
        store, key = self._pool.store, chunk_key(digest)
        if store.exists(key):  # another host or process stored it since we listed
            return store.stat(key).size, key, False
        sealed = self._pool.codec.seal(plaintext)
        # Durable by the writer's commit (flush), not yet: the next chunk is sealed meanwhile.
        store.put_soon(key, sealed.parts)
        return sealed.size, key, True


class DedupDiskWriter(DiskWriter):
    pool: DedupPool

    def has(self, digest: str) -> bool:
        return self.pool.index.lookup(digest) is not None

    def _store(self, offset: int, plaintext: bytes | bytearray, digest: str) -> tuple[int, str, bool]:
        return self.pool.index.store(digest, plaintext)

    def _known(self, digest: str) -> tuple[int, str]:
        known = self.pool.index.lookup(digest)
        if known is None:
            raise PoolError(
                f"pool {self.pool.name} does not hold chunk {digest}; ask has() before add_known(), "
                "or send the chunk with put_chunk()"
            )
        return known

    def settle(self) -> None:
        self.pool.flush()

    def _finish(self) -> None:
        # Every chunk this disk stored, or found pending in this process, is durable after this
        # (rule 9 of the blob store), before the manifest naming them is written.
        try:
            self.pool.flush()
        except PoolError:
            raise
        except OSError as error:
            raise PoolError(
                f"pool {self.pool.name}: chunks of {self.volume_id} could not be made durable ({error}); "
                "check the pool's storage (mount, kernel log), then run the backup again. Nothing of "
                "this disk was committed"
            ) from error
        self.pool.write_index_blob()

    def _discard(self) -> None:
        # Stored chunks may already be shared with other backups (garbage collection frees
        # them); only wait until none of this pool's chunk writes is still in flight, so an
        # aborted backup leaves no temp file behind. A failure here was already reported.
        with contextlib.suppress(Exception):  # best effort: the backup is failing anyway
            self.pool.flush()


class DedupPool(Pool):
    kind = "dedup"
    collects_garbage = True

    def __init__(self, store: BlobStore, config: PoolConfig, codec: EnvelopeCodec) -> None:
        super().__init__(store, config, codec)
        self.index = ChunkIndex(self)
        self._relocations: ChunkIndex | None = None  # where moved chunks are now (_read_envelope)
        packed = config.format_version >= PACKED_FORMAT
        self.packs = PackAssembler(store, codec, config.chunk_size) if packed else None

    def open_disk_writer(self, set_id: str, volume_id: str, size_bytes: int) -> DedupDiskWriter:
        self.manifest_key(set_id, volume_id)  # validates both ids before any work
        self.check_config_fits()
        return self._registered(lambda: DedupDiskWriter(self, set_id, volume_id, size_bytes))

    def _writing_started(self) -> None:
        # The index is read again now the backup lock is held: one read before it could name
        # packs a garbage collection condemned (and deleted) meanwhile (docs/format.md).
        self.index = ChunkIndex(self)

    def write_index_blob(self) -> None:
        """An index blob of the packs made durable since the last one. Best effort: the packs
        describe themselves, and a later load reads those no index blob describes."""
        packs = self.packs
        if packs is None:
            return
        records = packs.take_durable()
        if not records:
            return
        try:
            write_index_blob(self.store, records)
        except Exception as error:
            packs.give_back_durable(records)
            log.warning(
                "pool %s: the index blob of %d packs was not written (%s); the next backup reads "
                "their own indexes instead",
                self.name,
                len(records),
                error,
            )

    def merge_index_blobs(self, records: list[PackRecord], replaces: list[str]) -> None:
        """One index blob of `records` (every pack listed), then the blobs it replaces deleted
        (not where the storage keeps every blob). Best effort, as `write_index_blob`."""
        try:
            write_index_blob(self.store, records)
            if self.store.keeps_every_blob:
                return
            for key in replaces:
                with contextlib.suppress(BlobNotFoundError):  # another process merged them too
                    self.store.delete(key)
        except Exception as error:
            log.warning(
                "pool %s: the index blobs were not merged (%s); they are still used", self.name, error
            )

    def flush(self) -> None:
        """Every chunk stored so far is durable after this (packs closed, blobs synced)."""
        if self.packs is not None:
            self.packs.flush()
        else:
            self.store.flush()

    def _read_envelope(self, ref: ChunkRef) -> bytes:
        if "@" not in ref.location:
            return self.store.get(ref.location or chunk_key(ref.digest))
        try:
            return self._read_packed(ref)
        except BlobNotFoundError:
            # A repack moved the chunk after this reader loaded its manifest (the manifest
            # now names the new pack): any copy of the chunk id serves, the digest is checked.
            for fresh in (False, True):
                moved = self._relocated(ref, fresh=fresh)
                if moved is None:
                    continue
                with contextlib.suppress(BlobNotFoundError):
                    return self._read_packed(moved)
            raise

    def _relocated(self, ref: ChunkRef, *, fresh: bool) -> ChunkRef | None:
        """`ref` at another copy of its chunk, from an index read once for all moved chunks
        (again when `fresh`); None when the pool holds no other copy."""
        if fresh or self._relocations is None:
            self._relocations = ChunkIndex(self, avoid_condemned=False)
        known = self._relocations.lookup(ref.digest)
        if known is None or known[1] == ref.location or "@" not in known[1]:
            return None
        return ref.model_copy(update={"stored_size": known[0], "location": known[1]})
