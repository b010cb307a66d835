"""The self-describing stream a disk backup is written as on sequential media (tape, optical).

A stream is records (tag u8, payload length u32 big-endian, payload):

    H  header   JSON {set_id, volume_id, pool_id, part}; first in every medium file
    P  pool     the pool's config.json (only the passphrase-wrapped key), right after H
    C  chunk    disk offset u64, envelope length u32, chunk id 32 bytes, the envelope
    T  trailer  the disk's manifest (JSON, sealed from format version 3), only at the end of the
                last part
    K  catalog  chunk id 32 bytes + the envelope of the set's catalog rows (catalog/set_copy.py),
                alone in its own file after H and P (the header's volume_id is empty)

Chunk records are framed exactly as in a standard pool's pack, so a medium read without the
pool home rebuilds every manifest from its trailers, the pool's config from any P record and
the catalog from the K records (`pool scan`). Tags are never reused for another meaning.
"""

from __future__ import annotations

import json
import logging
import threading
from abc import abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from bingobackup.format.config import PoolConfig
from bingobackup.format.constants import CHUNK_RECORD, CONFIG_NAME
from bingobackup.format.constants import STREAM_CATALOG as CATALOG
from bingobackup.format.constants import STREAM_CHUNK as CHUNK
from bingobackup.format.constants import STREAM_HEADER as HEADER
from bingobackup.format.constants import STREAM_POOL_CONFIG as POOL_CONFIG
from bingobackup.format.constants import STREAM_TRAILER as TRAILER
from bingobackup.format.errors import ManifestError
from bingobackup.format.manifest import DiskManifest
from bingobackup.format.records import parse_stream, record
from bingobackup.pools.pool import Pool
from bingobackup.pools.standard import RECORD_BYTES
from bingobackup.pools.writer import DiskWriter
from bingobackup.storage.base import BlobStore, Buffer
from bingobackup.storage.errors import PoolError

_DIGEST_BYTES = 32
log = logging.getLogger("bingobackup.pools")


def header_record(set_id: str, volume_id: str, pool_id: str, part: int) -> bytes:
    fields = {"set_id": set_id, "volume_id": volume_id, "pool_id": pool_id, "part": part}
    return record(HEADER, json.dumps(fields).encode())


def file_start(pool: Pool, set_id: str, volume_id: str, part: int) -> bytes:
    """What every medium file starts with: the header, then the pool's config, so any one
    cartridge or disc opens the pool (with its passphrase) when the pool home is lost."""
    return header_record(set_id, volume_id, pool.config.pool_id, part) + record(
        POOL_CONFIG, pool.config.to_json()
    )


def chunk_record(offset: int, stored_size: int, digest: str, parts: tuple[Buffer, ...]) -> bytes:
    return record(CHUNK, CHUNK_RECORD.pack(offset, stored_size, bytes.fromhex(digest)) + b"".join(parts))


def catalog_copy_file(pool: Pool, set_id: str, payload: bytes) -> bytes:
    """A whole medium file keeping a copy of one set's catalog rows, sealed like a chunk (an
    encrypted pool's VM names and addresses are not readable on its media)."""
    sealed = pool.codec.seal(payload)
    digest = bytes.fromhex(pool.chunk_digest(payload))
    return file_start(pool, set_id, "", 0) + record(CATALOG, digest + b"".join(sealed.parts))


def config_on_media(files: Iterable[bytes]) -> PoolConfig | None:
    """The pool config of the first P record in `files` (read lazily: usually the first file)."""
    for data in files:
        for tag, _, payload in parse_stream(data):
            if tag == POOL_CONFIG:
                return PoolConfig.from_json(payload, "the pool config on the media")
            if tag not in (HEADER, POOL_CONFIG):
                break  # P follows H at once: this file (an older stream) has none
    return None


def recover_config(store: BlobStore, files: Iterable[bytes], where: str) -> PoolConfig | None:
    """Writes the pool home's config.json from the media when it is missing; returns the config
    written (None: the home has one). `where` names the media in the error."""
    if store.exists(CONFIG_NAME):
        return None
    config = config_on_media(files)
    if config is None:
        raise PoolError(
            f"the pool home {store.name} has no config.json and no pool config was found on {where}; "
            "load the pool's cartridges or disc images and scan again"
        )
    store.put(CONFIG_NAME, config.to_json())
    return config


@dataclass
class MediaScan:
    """What `pool scan` found on a pool's media."""

    media: int = 0  # cartridges or discs read
    disks: list[tuple[str, str]] = field(default_factory=list)  # (set, volume) of complete streams
    manifests_restored: int = 0  # of those, manifests the pool home lacked
    catalog_copies: dict[str, bytes] = field(default_factory=dict)  # set id -> catalog payload


def scan_streams(pool: Pool, files: Iterable[bytes], media: int = 0) -> MediaScan:
    """`pool scan` for sequential media: saves the manifest of every complete disk stream of
    `pool` found in `files` (one medium file each) that the pool does not hold yet, and opens
    every catalog copy. Streams of other pools are ignored."""
    found = MediaScan(media=media)
    for data in files:
        ours, set_id = False, ""
        for tag, _, payload in parse_stream(data):
            if tag == HEADER:
                fields = json.loads(payload)
                ours, set_id = fields.get("pool_id") == pool.config.pool_id, str(fields.get("set_id", ""))
            elif tag == TRAILER and ours:
                try:
                    manifest, sealed = pool.open_manifest(payload, f"the trailer of a stream of set {set_id}")
                except ManifestError as error:  # that disk is not restored; the others are
                    log.warning("%s", error)
                    continue
                if not pool.store.exists(pool.manifest_key(manifest.set_id, manifest.volume_id)):
                    if not sealed:  # written before the pool's format sealed manifests
                        log.warning(
                            "pool %s: the manifest of disk %s in set %s on the media has no seal "
                            "(written before format version 3); it is sealed as found",
                            pool.name,
                            manifest.volume_id,
                            manifest.set_id,
                        )
                    pool.save_manifest(manifest)
                    found.manifests_restored += 1
                found.disks.append((manifest.set_id, manifest.volume_id))
            elif tag == CATALOG and ours:
                digest, envelope = payload[:_DIGEST_BYTES].hex(), payload[_DIGEST_BYTES:]
                where = f"{pool.name}:catalog copy of set {set_id}"
                found.catalog_copies[set_id] = pool.codec.open(envelope, digest, where)
    return found


class MediaPool(Pool):
    """A pool on removable media (tape, optical): what lives in its home is also on the media."""

    @abstractmethod
    def keep_catalog_copy(self, set_id: str, payload: bytes) -> None:
        """Writes `payload` (the set's catalog rows) as its own file on the current medium, so
        `pool scan` rebuilds the catalog without the pool home. PoolFullError when no medium
        has room."""


def keep_catalog_copy(pool: Pool, set_id: str, payload: Callable[[], bytes]) -> bool:
    """After a set is committed to the catalog: a media pool keeps a copy of its rows on the
    media (other kinds keep their catalog next to their data already, and `payload` is not
    built for them). True if written."""
    if not isinstance(pool, MediaPool):
        return False
    pool.keep_catalog_copy(set_id, payload())
    return True


class StreamDiskWriter(DiskWriter):
    """One disk written as a stream on removable media (tape, optical): every chunk is sent
    (a backup on media is self-contained), records are appended under one lock, and the
    manifest is the stream's trailer, written before the file ends. Each medium says how a
    record is appended (moving on to the next cartridge or disc when it does not fit), how a
    chunk's location is named, and how its file ends."""

    pool: MediaPool
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

    def _store(self, offset: int, plaintext: bytes | bytearray, digest: str) -> tuple[int, str, bool]:
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
            self._write(record(TRAILER, self.pool.sealed_manifest_json(manifest)))
            self._end_file()
        self._release()
