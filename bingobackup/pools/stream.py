"""The self-describing stream a disk backup is written as on sequential media (tape, optical).

A stream is records (tag u8, payload length u32 big-endian, payload):

    H  header   JSON {set_id, volume_id, pool_id, part}
    C  chunk    disk offset u64, envelope length u32, chunk id 32 bytes, the envelope
    T  trailer  the disk's manifest (JSON), only at the end of the last part

Chunk records are framed exactly as in a standard pool's pack, so a medium read without the
catalog rebuilds every manifest from its trailers.
"""

from __future__ import annotations

import json
import struct
import threading
from abc import abstractmethod
from collections.abc import Iterable, Iterator

from bingobackup.format.manifest import DiskManifest
from bingobackup.pools.base import Buffer
from bingobackup.pools.errors import PoolError
from bingobackup.pools.pool import Pool
from bingobackup.pools.standard import _RECORD, RECORD_BYTES
from bingobackup.pools.writer import DiskWriter

TAG = struct.Struct(">cI")
HEADER, CHUNK, TRAILER = b"H", b"C", b"T"


def record(tag: bytes, payload: bytes) -> bytes:
    return TAG.pack(tag, len(payload)) + payload


def header_record(set_id: str, volume_id: str, pool_id: str, part: int) -> bytes:
    fields = {"set_id": set_id, "volume_id": volume_id, "pool_id": pool_id, "part": part}
    return record(HEADER, json.dumps(fields).encode())


def chunk_record(offset: int, stored_size: int, digest: str, parts: tuple[Buffer, ...]) -> bytes:
    return record(CHUNK, _RECORD.pack(offset, stored_size, bytes.fromhex(digest)) + b"".join(parts))


def parse_stream(data: bytes) -> Iterator[tuple[bytes, int, bytes]]:
    """(tag, offset of the payload, payload) of every complete record of a stream file."""
    position = 0
    while position + TAG.size <= len(data):
        tag, length = TAG.unpack_from(data, position)
        start = position + TAG.size
        if start + length > len(data):
            return  # an aborted stream's tail
        yield tag, start, data[start : start + length]
        position = start + length


def recover_manifests(pool: Pool, files: Iterable[bytes]) -> list[tuple[str, str]]:
    """`pool scan` for sequential media: saves the manifest of every complete disk stream of
    `pool` found in `files` (one medium file each) that the pool does not hold yet; returns
    the (set_id, volume_id) of every one found. Streams of other pools are ignored."""
    found: list[tuple[str, str]] = []
    for data in files:
        ours = False
        for tag, _, payload in parse_stream(data):
            if tag == HEADER:
                ours = json.loads(payload).get("pool_id") == pool.config.pool_id
            elif tag == TRAILER and ours:
                manifest = DiskManifest.model_validate_json(payload)
                if not pool.store.exists(pool.manifest_key(manifest.set_id, manifest.volume_id)):
                    pool.save_manifest(manifest)
                found.append((manifest.set_id, manifest.volume_id))
    return found


class StreamDiskWriter(DiskWriter):
    """One disk written as a stream on removable media (tape, optical): every chunk is sent
    (a backup on media is self-contained), records are appended under one lock, and the
    manifest is the stream's trailer, written before the file ends. Each medium says how a
    record is appended (moving on to the next cartridge or disc when it does not fit), how a
    chunk's location is named, and how its file ends."""

    medium = ""  # "tape", "optical": named in errors

    def __init__(self, pool: Pool, set_id: str, volume_id: str, size_bytes: int) -> None:
        super().__init__(pool, set_id, volume_id, size_bytes)
        self._stream_lock = threading.Lock()

    @abstractmethod
    def _write(self, framed: bytes) -> int:
        """Appends one record (on the next medium when this one is full); returns the offset
        of its payload in the current file. Called with the stream lock held."""

    @abstractmethod
    def _location(self, envelope_offset: int) -> str:
        """A chunk's location: medium, file and the offset of its envelope."""

    @abstractmethod
    def _end_file(self) -> None: ...

    @abstractmethod
    def _release(self) -> None:
        """Gives the drive or burner back (idempotent)."""

    def has(self, digest: str) -> bool:
        return False

    def _store(self, offset: int, plaintext: bytes, digest: str) -> tuple[int, str, bool]:
        sealed = self.pool.codec.seal(plaintext)  # outside the lock: channels seal in parallel
        chunk = chunk_record(offset, sealed.size, digest, sealed.parts)
        with self._stream_lock:
            location = self._location(self._write(chunk) + RECORD_BYTES)
        return sealed.size, location, True

    def _known(self, digest: str) -> tuple[int, str]:
        raise PoolError(
            f"pool {self.pool.name} keeps every backup on {self.medium} self-contained and does not "
            "deduplicate; send every chunk"
        )

    def _finish(self) -> None:
        with self._stream_lock:
            manifest = DiskManifest(
                set_id=self.set_id,
                volume_id=self.volume_id,
                size_bytes=self.size_bytes,
                chunk_size=self.chunk_size,
                chunks=tuple(self._refs[o] for o in sorted(self._refs)),
            )
            self._write(record(TRAILER, manifest.model_dump_json().encode()))
            self._end_file()
        self._release()
