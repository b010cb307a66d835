"""The tape pool: each disk backup is written as one self-describing stream on tape.

The pool's home directory keeps config.json, the manifests and the catalog (random access);
the chunks go to the library (tapelib.py). A disk's stream (records framed as stream.py
describes: header, chunks, manifest trailer) is one tape file.

When a cartridge fills, the file ends there (filemark) and the stream continues as part
N+1 on the next cartridge with free blocks; no record straddles cartridges. A chunk's
location is `tape:<barcode>:<file number>:<byte offset of its envelope in the file>`, so a
restore positions to it. Every file also carries the pool's config, and each committed set a
catalog copy file, so `scan_home.recover_tape_home` + `scan_library` rebuild the home from the
cartridges alone (config, manifests; the CLI writes the catalog copies back).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from bingobackup.format.compression import CompressionSetting
from bingobackup.format.config import PoolConfig
from bingobackup.format.constants import STREAM_TAG as _TAG
from bingobackup.format.crypto import DEFAULT_SCRYPT_N
from bingobackup.format.envelope import EnvelopeCodec
from bingobackup.format.manifest import ChunkRef, DiskManifest
from bingobackup.media.tapelib import TapeLibrary, TapeMedium
from bingobackup.pools.open import create_pool_in, open_pool_in
from bingobackup.pools.stream import (
    MediaPool,
    MediaScan,
    StreamDiskWriter,
    catalog_copy_file,
    file_start,
    scan_streams,
)
from bingobackup.storage.base import BlobStore
from bingobackup.storage.errors import PoolError, PoolFullError
from bingobackup.storage.localdir import LocalDirBlobStore


class TapeDiskWriter(StreamDiskWriter):
    pool: TapePool
    medium = "tape"

    def __init__(self, pool: TapePool, set_id: str, volume_id: str, size_bytes: int) -> None:
        super().__init__(pool, set_id, volume_id, size_bytes)
        pool.library.drive.acquire()  # one drive: disks are written one after another
        self._holding_drive = True
        self._broken: PoolFullError | None = None  # the host filled up: the file was cut off
        self._part = 0
        self._pending = bytearray()
        try:
            self._cartridge = self._begin_file(pool.library.cartridges(), needed=1)
        except BaseException:
            pool.library.drive.release()
            raise

    # -- the stream ------------------------------------------------------------------------
    def _begin_file(self, candidates: list[TapeMedium], needed: int) -> TapeMedium:
        block = self.pool.library.settings.block_size
        header = file_start(self.pool, self.set_id, self.volume_id, self._part)
        for cartridge in candidates:
            if cartridge.free_blocks * block >= len(header) + needed + block:
                self._file = cartridge.files
                self._free = cartridge.free_blocks  # tracked from here: the drive is ours
                self._file_bytes = 0
                self._pending = bytearray()
                self._append(header)
                return cartridge
        where = f"after cartridge {self._cartridge.barcode}" if self._part else "in the library"
        raise PoolFullError(
            self.pool.name,
            needed,
            f"no cartridge {where} has room",
            "load or add cartridges to the library and run the backup again",
        )

    def _blocks_after(self, extra: int) -> int:
        block = self.pool.library.settings.block_size
        return -(-(len(self._pending) + extra) // block)

    def _append(self, framed: bytes) -> int:
        """Adds a record to the current file; returns its payload's offset in the file."""
        offset = self._file_bytes + _TAG.size
        self._pending += framed
        self._file_bytes += len(framed)
        block = self.pool.library.settings.block_size
        full = len(self._pending) // block
        if full:
            self._put([bytes(self._pending[i * block : (i + 1) * block]) for i in range(full)], False)
            self._free -= full
            del self._pending[: full * block]
            if self._cartridge.end_of_medium:  # a real drive passed its early warning
                self._free = 0
        return offset

    def _end_file(self) -> None:
        payload = [bytes(self._pending)] if self._pending else []
        self._put(payload, filemark=True)
        self._free -= len(payload)
        self._pending = bytearray()

    def _put(self, payloads: list[bytes], filemark: bool) -> None:
        if self._broken is not None:  # another channel's chunk after the cut: nothing more goes on
            raise self._broken
        try:
            self._cartridge.append(payloads, filemark)
        except PoolFullError as error:
            self._broken = error
            raise

    def _next_cartridge(self, needed: int) -> None:
        """Ends the file on the full cartridge; the stream goes on as the next part elsewhere."""
        self._end_file()
        self._part += 1
        following = [c for c in self.pool.library.cartridges() if c.barcode > self._cartridge.barcode]
        self._cartridge = self._begin_file(following, needed)

    def _release(self) -> None:
        if self._holding_drive:
            self._holding_drive = False
            self.pool.library.drive.release()

    # -- StreamDiskWriter ------------------------------------------------------------------
    def _write(self, framed: bytes) -> int:
        if self._blocks_after(len(framed)) > self._free:
            self._next_cartridge(len(framed))
        return self._append(framed)

    def _location(self, envelope_offset: int) -> str:
        return f"tape:{self._cartridge.barcode}:{self._file}:{envelope_offset}"

    def _discard(self) -> None:
        # Tape cannot be unwritten: close the file without a trailer (scan skips it); no
        # manifest names it, so it is invisible. Its space is reclaimed when the cartridge is reused.
        with self._stream_lock:
            if self._holding_drive and self._broken is None:
                with contextlib.suppress(PoolError):
                    self._end_file()
        self._release()


class TapePool(MediaPool):
    kind = "tape"

    def __init__(
        self, store: BlobStore, config: PoolConfig, codec: EnvelopeCodec, library: TapeLibrary
    ) -> None:
        super().__init__(store, config, codec)
        self.library = library
        library.pool_name = config.name

    def open_disk_writer(self, set_id: str, volume_id: str, size_bytes: int) -> TapeDiskWriter:
        self.manifest_key(set_id, volume_id)
        self.check_config_fits()
        return TapeDiskWriter(self, set_id, volume_id, size_bytes)

    def _read_envelope(self, ref: ChunkRef) -> bytes:
        scheme, barcode, file_number, offset = [*ref.location.split(":"), "", "", ""][:4]
        if scheme != "tape" or not file_number.isdigit() or not offset.isdigit():
            raise PoolError(
                f"chunk {ref.digest} has location {ref.location!r}, not tape:<barcode>:<file>:<offset>"
            )
        return self.library.cartridge(barcode).read(int(file_number), int(offset), ref.stored_size)

    def cartridges_of(self, manifest: DiskManifest) -> list[str]:
        """The cartridges a restore of this disk needs, in order."""
        return sorted({ref.location.split(":")[1] for ref in manifest.chunks})

    def keep_catalog_copy(self, set_id: str, payload: bytes) -> None:
        """The set's catalog rows as one tape file on the first cartridge with room (the one
        being filled), after the set's disk streams."""
        framed = catalog_copy_file(self, set_id, payload)
        block = self.library.settings.block_size
        blocks = [framed[i : i + block] for i in range(0, len(framed), block)]
        with self.library.drive:
            for cartridge in self.library.cartridges():
                if cartridge.free_blocks >= len(blocks):
                    cartridge.append(blocks, filemark=True)
                    return
        raise PoolFullError(
            self.name,
            len(framed),
            f"no cartridge has room for the catalog copy of set {set_id}",
            "the set itself is committed; load or add cartridges so later sets keep their catalog on tape",
        )


def scan_library(pool: TapePool) -> MediaScan:
    """Rebuilds the manifests from the cartridges alone (`bingobackup pool scan`) and returns
    what was found, with the catalog copies (set id -> payload) for the catalog to write back."""
    media = pool.library.cartridges()
    files = (medium.read_file(n) for medium in media for n in range(medium.files))
    return scan_streams(pool, files, media=len(media))


def create_tape_pool(
    home: Path,
    library: TapeLibrary,
    *,
    chunk_size: int,
    encrypted: bool = False,
    passphrase: str | None = None,
    compression: CompressionSetting = "fast",
    scrypt_n: int = DEFAULT_SCRYPT_N,
) -> TapePool:
    """A tape pool whose home (config, manifests, catalog) is `home`, its chunks in `library`.
    The home's config says `standard` (records framed as in a pack); the kind is the registration's."""
    store = LocalDirBlobStore(Path(home), Path(home).name)
    create_pool_in(
        store,
        "standard",
        chunk_size=chunk_size,
        encrypted=encrypted,
        passphrase=passphrase,
        compression=compression,
        scrypt_n=scrypt_n,
    )
    return open_tape_pool(home, library, passphrase)


def open_tape_pool(home: Path, library: TapeLibrary, passphrase: str | None = None) -> TapePool:
    base = open_pool_in(LocalDirBlobStore(Path(home), Path(home).name), passphrase)
    return TapePool(base.store, base.config, base.codec, library)
