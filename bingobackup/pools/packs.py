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

`PackAssembler` gathers chunks in memory into one open pack per concurrent writer and hands
a pack to the blob store's `put_soon` once it reaches `PACK_TARGET_BYTES` (or at `flush`):
the store writes it in the caller's thread and fsyncs/renames it in the background, and keeps
its bytes until it is durable, so a failed write is redone (blob store rule 9). Memory:
one open pack per writer thread plus the store's queue of packs in flight.
"""

from __future__ import annotations

import struct
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from bingobackup.format.envelope import SealedChunk
from bingobackup.format.errors import FormatError
from bingobackup.pools.base import BlobInfo, BlobStore, Buffer, frozen

DATA = "data"
PACK_MAGIC = b"BBPACK"  # both pack kinds; the version after it tells them apart (standard.py is 1)
PACK_HEADER = PACK_MAGIC + struct.pack(">H", 2)
INDEX_MAGIC = b"BBPINDEX"
_ENTRY = struct.Struct(">32sQI")
_FOOTER = struct.Struct(">I8s")
# restic's default pack size: big enough that per-file costs vanish, small enough that the
# packs held in memory (one per writer, plus those waiting for their fsync) stay modest.
PACK_TARGET_BYTES = 16 << 20
_TAIL_GUESS = 64 << 10  # one range read covers the index of a pack of up to ~1,480 chunks


@dataclass(frozen=True)
class PackEntry:
    digest: str
    offset: int
    length: int


def pack_location(key: str, offset: int) -> str:
    return f"{key}@{offset}"


@dataclass(eq=False)
class _OpenPack:
    key: str = field(default_factory=lambda: _new_pack_key())
    parts: list[Buffer] = field(default_factory=lambda: [PACK_HEADER])
    entries: list[PackEntry] = field(default_factory=list)
    size: int = len(PACK_HEADER)

    def append(self, digest: str, sealed: SealedChunk) -> int:
        offset = self.size
        self.parts.extend(frozen(sealed.parts))  # the mover reuses its buffers; a raw chunk is one
        self.entries.append(PackEntry(digest, offset, sealed.size))
        self.size += sealed.size
        return offset

    def blob(self) -> list[Buffer]:
        index = b"".join(_ENTRY.pack(bytes.fromhex(e.digest), e.offset, e.length) for e in self.entries)
        return [*self.parts, index, _FOOTER.pack(len(self.entries), INDEX_MAGIC)]


def _new_pack_key() -> str:
    pack_id = uuid.uuid4().hex
    return f"{DATA}/{pack_id[:2]}/{pack_id}"


class PackAssembler:
    """Places chunk envelopes into packs for one pool. Thread-safe.

    Every chunk `place` returned a location for is durable once `flush` returns. A pack whose
    write fails is kept and written again before the next chunk is placed and by `flush`,
    which raise if it fails again (so a backup's reconnect logic retries it like a failed put).
    """

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self._changed = threading.Condition()
        self._free: list[_OpenPack] = []  # open packs no writer holds
        self._unsent: list[_OpenPack] = []  # closed packs whose write failed
        self._sending: set[_OpenPack] = set()  # closed packs being handed to the store
        self._appending = 0

    def place(self, digest: str, sealed: SealedChunk) -> str:
        """Adds one envelope; returns its location."""
        self._send(self._take_unsent(), raise_errors=True)
        with self._changed:
            pack = self._free.pop() if self._free else _OpenPack()
            self._appending += 1
        try:
            offset = pack.append(digest, sealed)
        finally:
            with self._changed:
                self._appending -= 1
                full = pack.size >= PACK_TARGET_BYTES
                (self._sending.add if full else self._free.append)(pack)
                self._changed.notify_all()
        if full:  # a failure keeps the pack for the next place or flush, which raise
            self._send([pack], raise_errors=False)
        return pack_location(pack.key, offset)

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
        self._store.flush()

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
            try:
                self._store.put_soon(pack.key, pack.blob())
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
    index_start = info.size - needed
    entries = []
    for digest, offset, length in _ENTRY.iter_unpack(data[len(data) - needed : len(data) - _FOOTER.size]):
        if offset < len(PACK_HEADER) or offset + length > index_start:
            raise _damaged(store, info.key, f"its index points outside the pack ({offset}+{length})")
        entries.append(PackEntry(digest.hex(), offset, length))
    return entries


def list_packs(store: BlobStore) -> Iterator[BlobInfo]:
    return store.list(f"{DATA}/")


def _damaged(store: BlobStore, key: str, reason: str) -> FormatError:
    return FormatError(
        f"pool {store.name}: pack {key} is damaged ({reason}); its chunks cannot be found. Move the "
        "file out of the pool and run the backup again (its chunks are stored anew); backups that "
        "used it report the damaged chunks on restore"
    )
