"""The standard pool: no dedup across backups; each disk backup is one pack, read back in order.

A pack `packs/<set id>/<volume id>.pack` is an 8-byte header (b"BBPACK", version u16) and
one record per stored chunk, in the order the channels finished them:

    offset size field
    0      8    disk offset of the chunk, big-endian
    8      4    envelope length, big-endian
    12     32   chunk id (raw digest bytes)
    44     ...  the chunk envelope (envelope.py)

So a pack rebuilds its manifest on its own. It is written under a temp name and renamed on
commit; an aborted or crashed backup leaves no pack. ChunkRef.location is `<pack key>@<offset
of the envelope>`.

Resuming after a lost link (the job's resume buffer, `keep_unacknowledged`): the writer keeps
the records written since the pack was last made durable (`BlobWriter.sync`), and syncs
whenever keeping the next record would pass the buffer. A write that fails with a lost link
marks the pack broken; the next store (the channel's retry) cuts the pack back to its durable
end and writes the kept records again, byte for byte at the same offsets (so every location
handed out stays right), then goes on.
"""

from __future__ import annotations

import threading

from bingobackup.format.constants import CHUNK_RECORD, PACKS
from bingobackup.format.constants import STANDARD_PACK_HEADER as PACK_HEADER
from bingobackup.format.envelope import SealedChunk
from bingobackup.format.manifest import ChunkRef
from bingobackup.pools.packs import pack_location
from bingobackup.pools.pool import Pool, check_name
from bingobackup.pools.writer import DiskWriter
from bingobackup.storage.base import BlobWriter, Buffer
from bingobackup.storage.errors import PoolError, is_permanent_error

RECORD_BYTES = CHUNK_RECORD.size


def pack_key(set_id: str, volume_id: str) -> str:
    return f"{PACKS}/{check_name('set id', set_id)}/{check_name('volume id', volume_id)}.pack"


class StandardDiskWriter(DiskWriter):
    pool: StandardPool

    def __init__(self, pool: StandardPool, set_id: str, volume_id: str, size_bytes: int) -> None:
        super().__init__(pool, set_id, volume_id, size_bytes)
        self._key = pack_key(set_id, volume_id)
        self._pack: BlobWriter = pool.store.open_append(self._key)
        self._pack_lock = threading.Lock()
        self._keep_limit: int | None = None  # None: nothing kept, a failed write ends the pack
        self._kept: list[tuple[Buffer, ...]] = [(PACK_HEADER,)]
        self._kept_bytes = len(PACK_HEADER)
        self._durable = 0
        self._broken = False
        self.resends: list[int] = []  # bytes written again, per try after a lost link
        self._pack.write(PACK_HEADER)

    def keep_unacknowledged(self, limit_bytes: int) -> None:
        self._keep_limit = limit_bytes

    def has(self, digest: str) -> bool:
        return False  # a standard pool keeps every chunk of every backup

    def _store(self, offset: int, plaintext: bytes | bytearray, digest: str) -> tuple[int, str, bool]:
        sealed: SealedChunk = self.pool.codec.seal(plaintext)  # outside the lock: channels run in parallel
        record = CHUNK_RECORD.pack(offset, sealed.size, bytes.fromhex(digest))
        blob = (record, *sealed.parts)
        size = RECORD_BYTES + sealed.size
        with self._pack_lock:
            if self._broken:
                self._resend_kept()
            if self._keep_limit is not None and self._kept and self._kept_bytes + size > self._keep_limit:
                self._acknowledge()
            start = self._write(blob)
            if self._keep_limit is not None:
                self._kept.append(blob)
                self._kept_bytes += size
        return sealed.size, pack_location(self._key, start + RECORD_BYTES), True

    def _write(self, blob: tuple[Buffer, ...]) -> int:
        try:
            return self._pack.write(blob)
        except OSError as error:
            lost_link = not is_permanent_error(error)
            self._broken = self._keep_limit is not None and lost_link
            raise

    def _acknowledge(self) -> None:
        """Makes the pack durable so far: the kept records are needed no more."""
        try:
            self._pack.sync()
        except OSError:
            self._broken = self._keep_limit is not None
            raise
        self._durable = self._pack.size
        self._kept, self._kept_bytes = [], 0

    def _resend_kept(self) -> None:
        # The kept records lie back to back from the durable end; a store may have kept some
        # of them (an S3 part already uploaded) and goes on from further on.
        position = self._durable
        resume_at = self._pack.rewind(position)
        self.resends.append(0)
        for blob in self._kept:
            size = sum(len(memoryview(part).cast("B")) for part in blob)
            skip, position = resume_at - position, position + size
            if skip >= size:
                continue
            if skip > 0:
                blob = (b"".join(blob)[skip:],)
            self._write(blob)
            self.resends[-1] += size - max(skip, 0)
        self._broken = False

    def settle(self) -> None:
        with self._pack_lock:
            if self._broken:
                self._resend_kept()
            if self._keep_limit is not None:
                self._acknowledge()

    def _known(self, digest: str) -> tuple[int, str]:
        raise PoolError(
            f"pool {self.pool.name} is a standard pool and does not deduplicate; send every chunk "
            "with put_chunk()"
        )

    def _finish(self) -> None:
        with self._pack_lock:
            self._pack.commit()

    def _discard(self) -> None:
        with self._pack_lock:
            self._pack.abort()


class StandardPool(Pool):
    kind = "standard"
    collects_garbage = True

    def open_disk_writer(self, set_id: str, volume_id: str, size_bytes: int) -> StandardDiskWriter:
        pack_key(set_id, volume_id)  # validates both ids before any work
        self.check_config_fits()
        return self._registered(lambda: StandardDiskWriter(self, set_id, volume_id, size_bytes))

    def _read_envelope(self, ref: ChunkRef) -> bytes:
        return self._read_packed(ref)

    def _set_data_keys(self, set_id: str) -> list[str]:
        return [info.key for info in self.store.list(f"{PACKS}/{check_name('set id', set_id)}/")]
