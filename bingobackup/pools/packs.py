"""Dedup pool packs (format version 2): many chunk envelopes in one blob, an index at its end.

Storing each chunk as a file of its own costs a create, a rename and a directory fsync per
chunk, and a per-chunk existence check; packing them (as restic's `data/` packs) removes all
of that (measured on the benchmark image: ~15 % off a first backup, docs/benchmarks.md).

A pack `data/<2 hex>/<32 hex pack id>` (pack id random) is, integers big-endian:

    offset  size  field
    0       8     b"BBPACK" + version u16 = 2
    8       ...   chunk envelopes back to back (envelope.py)
    ...     44×n  index: per chunk its id (32 raw bytes), envelope offset u64, envelope length u32
    end-12  4     n, the number of chunks
    end-8   8     b"BBPINDEX"

`ChunkRef.location` is `<pack key>@<envelope offset>` and `stored_size` the envelope length,
so one range read fetches a chunk; the index lets a later backup learn what a pack holds
from its tail alone (the agent-side index of a dedup pool, and what a rerun after a crash
finds stored).

Index blobs `index/<32 hex id>` repeat the indexes of many packs, so a backup learns what a
pool of thousands of packs holds from a few reads instead of one per pack (on object storage,
a round trip each). Written once the packs they describe are durable; a pack no index blob
describes (its backup died before writing one) is read from its own tail. Integers big-endian:

    offset  size   field
    0       8      b"BBINDX" + version u16 = 1
    8       ...    per pack: pack id (16 raw bytes), pack blob size u64, n u32, then n index
                   entries as in the pack (id 32 bytes, envelope offset u64, length u32)
    end-32  32     BLAKE3 of everything before it

`PackAssembler` seals chunks straight into one open pack per concurrent writer: a reusable
page-aligned buffer (AES-GCM encrypts into it, no sealed copy is made), handed over to the
blob store's `put_soon` once it reaches `PACK_TARGET_BYTES` (or at `flush`). A local store
writes it on its own threads with direct I/O, so the bytes go from the buffer to the disk
without a copy into the page cache or a writeback (measured on the benchmark image: ~0.3 CPU-s
and 0.1-0.2 s off a first backup, docs/benchmarks.md), and gives the buffer back once the pack
is durable; a failed write is redone from it (blob store rule 9). Memory: one open pack per
writer thread, the packs the store's queue holds, and a few spare buffers.
"""

from __future__ import annotations

import contextlib
import mmap
import re
import struct
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial

import blake3

from bingobackup.format.constants import DATA, INDEX_BLOB_HEADER, INDEX_BLOBS
from bingobackup.format.constants import DEDUP_PACK_HEADER as PACK_HEADER
from bingobackup.format.constants import INDEX_BLOB_RECORD as _RECORD
from bingobackup.format.constants import PACK_FOOTER as _FOOTER
from bingobackup.format.constants import PACK_INDEX_ENTRY as _ENTRY
from bingobackup.format.constants import PACK_INDEX_MAGIC as INDEX_MAGIC
from bingobackup.format.envelope import EnvelopeCodec, max_sealed_size
from bingobackup.format.errors import FormatError
from bingobackup.storage.base import BlobInfo, BlobStore, Buffer

# restic's default pack size: big enough that per-file costs vanish, small enough that the
# packs held in memory (one per writer, plus those waiting for their fsync) stay modest.
PACK_TARGET_BYTES = 16 << 20
SPARE_BUFFERS = 4  # kept for the next packs: the store's queue of packs in flight
_TAIL_GUESS = 64 << 10  # one range read covers the index of a pack of up to ~1,480 chunks
_CHECKSUM_BYTES = 32
# Pack buffers are whole huge pages (x86-64 and arm64 with 4 KiB pages: 2 MiB), so none of
# a buffer's tail falls back to small pages; a multiple of the small page too (direct I/O).
HUGE_PAGE = 2 << 20
_MADV_HUGEPAGE: int | None = getattr(mmap, "MADV_HUGEPAGE", None)
_PACK_KEY = re.compile(rf"{DATA}/([0-9a-f]{{2}})/(\1[0-9a-f]{{30}})")


@dataclass(frozen=True)
class PackEntry:
    digest: str
    offset: int
    length: int


def pack_location(key: str, offset: int) -> str:
    return f"{key}@{offset}"


class _OutsidePack(ValueError):
    """An index entry pointing outside the pack's envelopes; its text is `offset+length`."""


def _encode_entries(entries: Iterable[PackEntry]) -> bytes:
    """A pack's index entries as the pack and the index blobs store them."""
    return b"".join(_ENTRY.pack(bytes.fromhex(e.digest), e.offset, e.length) for e in entries)


def _decode_entries(raw: bytes, index_start: int) -> list[PackEntry]:
    """The entries of `raw` (whole entries) of a pack whose index starts at `index_start`;
    `_OutsidePack` when one points into the pack header or past the envelopes."""
    entries = []
    for digest, offset, length in _ENTRY.iter_unpack(raw):
        if offset < len(PACK_HEADER) or offset + length > index_start:
            raise _OutsidePack(f"{offset}+{length}")
        entries.append(PackEntry(digest.hex(), offset, length))
    return entries


@dataclass(frozen=True)
class PackRecord:
    """What one pack holds, as an index blob repeats it: its key, blob size and entries."""

    key: str
    size: int
    entries: tuple[PackEntry, ...]


def encode_index_blob(records: Iterable[PackRecord]) -> bytes:
    parts = [INDEX_BLOB_HEADER]
    for record in records:
        match = _PACK_KEY.fullmatch(record.key)
        if match is None:
            raise ValueError(f"{record.key} is not a pack key")
        parts.append(_RECORD.pack(bytes.fromhex(match.group(2)), record.size, len(record.entries)))
        parts.append(_encode_entries(record.entries))
    body = b"".join(parts)
    return body + blake3.blake3(body).digest()


def decode_index_blob(store: BlobStore, key: str, data: bytes) -> list[PackRecord]:
    """The records of index blob `key`; FormatError naming it when it is damaged or newer."""
    body, checksum = data[:-_CHECKSUM_BYTES], data[-_CHECKSUM_BYTES:]
    if len(data) < len(INDEX_BLOB_HEADER) + _CHECKSUM_BYTES or not body.startswith(INDEX_BLOB_HEADER[:6]):
        raise _damaged_index(store, key, "it is not an index blob")
    if body[:8] != INDEX_BLOB_HEADER:
        raise FormatError(
            f"pool {store.name}: index blob {key} has version {int.from_bytes(body[6:8], 'big')}, which "
            "this bingobackup does not read; the packs it describes are read from their own indexes "
            "instead (slower). Upgrade bingobackup to use it"
        )
    if blake3.blake3(body).digest() != checksum:
        raise _damaged_index(store, key, "its checksum does not match its contents")
    records, position = [], len(INDEX_BLOB_HEADER)
    try:
        while position < len(body):
            pack_id, size, count = _RECORD.unpack_from(body, position)
            position += _RECORD.size
            end = position + count * _ENTRY.size
            if end > len(body):
                raise _damaged_index(store, key, f"a record of {count} entries is cut short")
            try:
                entries = _decode_entries(body[position:end], size - count * _ENTRY.size - _FOOTER.size)
            except _OutsidePack as outside:
                raise _damaged_index(store, key, f"an entry points outside its pack ({outside})") from None
            position = end
            records.append(PackRecord(_pack_key(pack_id.hex()), size, tuple(entries)))
    except struct.error as error:
        raise _damaged_index(store, key, f"a record is cut short ({error})") from None
    return records


def write_index_blob(store: BlobStore, records: list[PackRecord]) -> str:
    """Stores an index blob of `records` (atomic and durable, rule 1); returns its key."""
    key = f"{INDEX_BLOBS}/{uuid.uuid4().hex}"
    store.put(key, encode_index_blob(records))
    return key


def list_index_blobs(store: BlobStore) -> Iterator[BlobInfo]:
    return store.list(f"{INDEX_BLOBS}/")


def _damaged_index(store: BlobStore, key: str, reason: str) -> FormatError:
    return FormatError(
        f"pool {store.name}: index blob {key} is damaged ({reason}); it is not used, and the packs "
        "it describes are read from their own indexes instead (slower). Move the file out of the "
        "pool; the next backup writes a new one"
    )


class _PackBuffers:
    """Spare pack buffers. A fresh 20 MiB mapping costs ~5,000 page faults to fill, several
    microseconds each on a virtual machine; a buffer the store gave back costs none. A new
    one asks for transparent huge pages, so even the first fill of each (a first backup's
    every pack buffer) takes ten faults instead of 5,000 (measured: 25,000 of a benchmark
    backup's 40,000 faults, ~0.1 CPU-s). Where the kernel has none to give (THP off, memory
    fragmented) the buffer simply stays on small pages."""

    def __init__(self, spare: int) -> None:
        self._spare = spare
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()

    def take(self, capacity: int) -> mmap.mmap:
        with self._lock:
            while self._free:
                buffer = self._free.pop()
                if len(buffer) == capacity:
                    return buffer
        # Anonymous (page-aligned, as direct I/O wants) and private where the system has the
        # flag: a shared mapping is shmem, given huge pages only when told to system-wide.
        if hasattr(mmap, "MAP_PRIVATE"):
            buffer = mmap.mmap(-1, capacity, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        else:
            buffer = mmap.mmap(-1, capacity)
        if _MADV_HUGEPAGE is not None:
            with contextlib.suppress(OSError):  # a kernel without THP refuses the advice
                buffer.madvise(_MADV_HUGEPAGE)
        return buffer

    def give(self, buffer: mmap.mmap) -> None:
        with self._lock:
            if len(self._free) < self._spare:
                self._free.append(buffer)


@dataclass(eq=False)
class _OpenPack:
    buffer: mmap.mmap
    key: str = field(default_factory=lambda: _new_pack_key())
    entries: list[PackEntry] = field(default_factory=list)
    size: int = 0

    def __post_init__(self) -> None:
        self.buffer[: len(PACK_HEADER)] = PACK_HEADER
        self.size = len(PACK_HEADER)

    def append(self, digest: str, plaintext: bytes | bytearray, codec: EnvelopeCodec) -> tuple[int, int]:
        """Seals `plaintext` at the pack's end; (envelope offset, envelope length)."""
        offset = self.size
        with memoryview(self.buffer) as view:
            length = codec.seal_into(plaintext, view[offset:])
        self.entries.append(PackEntry(digest, offset, length))
        self.size += length
        return offset, length

    @property
    def blob_size(self) -> int:
        return self.size + len(self.entries) * _ENTRY.size + _FOOTER.size

    def blob(self) -> list[Buffer]:
        index = _encode_entries(self.entries)
        return [memoryview(self.buffer)[: self.size], index, _FOOTER.pack(len(self.entries), INDEX_MAGIC)]


class PackBuilder:
    """A dedup pack assembled from envelopes already sealed (a repack copies them as they are)."""

    def __init__(self) -> None:
        self.key = _new_pack_key()
        self._parts: list[bytes] = [PACK_HEADER]
        self.entries: list[PackEntry] = []
        self.size = len(PACK_HEADER)

    def add(self, digest: str, envelope: bytes) -> str:
        """Appends one envelope; its location in this pack."""
        self.entries.append(PackEntry(digest, self.size, len(envelope)))
        self._parts.append(envelope)
        self.size += len(envelope)
        return pack_location(self.key, self.size - len(envelope))

    def blob(self) -> list[bytes]:
        return [*self._parts, _encode_entries(self.entries), _FOOTER.pack(len(self.entries), INDEX_MAGIC)]

    def record(self) -> PackRecord:
        return PackRecord(
            self.key, self.size + len(self.entries) * _ENTRY.size + _FOOTER.size, tuple(self.entries)
        )


def _pack_key(pack_id: str) -> str:
    return f"{DATA}/{pack_id[:2]}/{pack_id}"


def _new_pack_key() -> str:
    return _pack_key(uuid.uuid4().hex)


class PackAssembler:
    """Seals chunks into packs for one pool. Thread-safe.

    Every chunk `place` returned a location for is durable once `flush` returns. A pack whose
    write fails is kept (here when the store refuses it, by the store when its background
    write fails) and written again by the next `place` that hands over a pack, or by `flush`,
    which raises if it fails again (so a backup's reconnect logic retries it like a failed put).
    """

    def __init__(self, store: BlobStore, codec: EnvelopeCodec, chunk_size: int) -> None:
        self._store = store
        self._codec = codec
        self._max_envelope = max_sealed_size(chunk_size)
        self._buffers = _PackBuffers(spare=SPARE_BUFFERS)
        self._changed = threading.Condition()
        self._free: list[_OpenPack] = []  # open packs no writer holds
        self._unsent: list[_OpenPack] = []  # closed packs whose write failed
        self._sending: set[_OpenPack] = set()  # closed packs being handed to the store
        self._appending = 0
        self._handed: list[PackRecord] = []  # handed to the store, durable at its next flush
        self._durable: list[PackRecord] = []  # durable, in no index blob yet

    def place(self, digest: str, plaintext: bytes | bytearray) -> tuple[int, str]:
        """Seals one chunk into a pack; (envelope length, location)."""
        self._send(self._take_unsent(), raise_errors=True)
        with self._changed:
            pack = self._free.pop() if self._free else None
            self._appending += 1
        try:
            if pack is None:
                # Room for the target and one more envelope: an open pack always has it.
                capacity = -(-(PACK_TARGET_BYTES + self._max_envelope) // HUGE_PAGE) * HUGE_PAGE
                pack = _OpenPack(self._buffers.take(capacity))
            offset, length = pack.append(digest, plaintext, self._codec)
        finally:
            with self._changed:
                self._appending -= 1
                if pack is not None:  # None only when no buffer could be had
                    full = pack.size >= PACK_TARGET_BYTES
                    (self._sending.add if full else self._free.append)(pack)
                self._changed.notify_all()
        if full:  # a failure keeps the pack for the next place or flush, which raise
            self._send([pack], raise_errors=False)
        return length, pack_location(pack.key, offset)

    def flush(self) -> None:
        """Closes every open pack and returns once all chunks placed so far are durable."""
        with self._changed:
            self._changed.wait_for(lambda: self._appending == 0)
            taken = self._free + self._take_unsent_locked()
            self._free = []
            self._sending.update(taken)
            in_flight = set(self._sending) - set(taken)
        self._send(taken, raise_errors=True)
        with self._changed:  # packs other threads were handing over when we started
            self._changed.wait_for(lambda: not in_flight & self._sending)
            retry = [p for p in self._unsent if p in in_flight]
            self._unsent = [p for p in self._unsent if p not in in_flight]
            self._sending.update(retry)
        self._send(retry, raise_errors=True)
        with self._changed:
            handed, self._handed = self._handed, []
        try:
            self._store.flush()
        except BaseException:
            with self._changed:
                self._handed[:0] = handed
            raise
        with self._changed:
            self._durable += handed

    def take_durable(self) -> list[PackRecord]:
        """The packs made durable by `flush` since the last call (for an index blob)."""
        with self._changed:
            taken, self._durable = self._durable, []
        return taken

    def give_back_durable(self, records: list[PackRecord]) -> None:
        """Records `take_durable` gave whose index blob could not be written: for the next one."""
        with self._changed:
            self._durable[:0] = records

    def _take_unsent(self) -> list[_OpenPack]:
        with self._changed:
            taken = self._take_unsent_locked()
            self._sending.update(taken)
            return taken

    def _take_unsent_locked(self) -> list[_OpenPack]:
        taken, self._unsent = self._unsent, []
        return taken

    def _send(self, packs: list[_OpenPack], *, raise_errors: bool) -> None:
        """Hands `packs` (already in `_sending`) to the store; a failed one and those after it
        go back to `_unsent`."""
        for index, pack in enumerate(packs):
            record = PackRecord(pack.key, pack.blob_size, tuple(pack.entries))
            try:
                self._store.put_soon(pack.key, pack.blob(), release=partial(self._buffers.give, pack.buffer))
            except Exception:
                with self._changed:
                    self._unsent[:0] = packs[index:]
                    self._sending.difference_update(packs[index:])
                    self._changed.notify_all()
                if raise_errors:
                    raise
                return
            with self._changed:
                self._sending.discard(pack)
                self._handed.append(record)
                self._changed.notify_all()


def read_pack_index(store: BlobStore, info: BlobInfo) -> list[PackEntry]:
    """What one pack holds, from its tail (one range read for all but huge packs)."""
    tail = min(info.size, _TAIL_GUESS)
    data = store.get(info.key, info.size - tail, tail)
    if len(data) < _FOOTER.size + len(PACK_HEADER):
        raise _damaged(store, info.key, "it is too short to hold an index")
    count, magic = _FOOTER.unpack(data[-_FOOTER.size :])
    if magic != INDEX_MAGIC:
        raise _damaged(store, info.key, "its index footer is missing")
    needed = count * _ENTRY.size + _FOOTER.size
    if needed > info.size - len(PACK_HEADER):
        raise _damaged(store, info.key, f"its index claims {count} chunks, more than the pack can hold")
    if needed > len(data):
        data = store.get(info.key, info.size - needed, needed)
    try:
        return _decode_entries(data[len(data) - needed : len(data) - _FOOTER.size], info.size - needed)
    except _OutsidePack as outside:
        raise _damaged(store, info.key, f"its index points outside the pack ({outside})") from None


def list_packs(store: BlobStore) -> Iterator[BlobInfo]:
    return store.list(f"{DATA}/")


def _damaged(store: BlobStore, key: str, reason: str) -> FormatError:
    return FormatError(
        f"pool {store.name}: pack {key} is damaged ({reason}); its chunks cannot be found. Move the "
        "file out of the pool and run the backup again (its chunks are stored anew); backups that "
        "used it report the damaged chunks on restore"
    )
