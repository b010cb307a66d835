"""The optical pool: each disk backup is a self-describing stream (stream.py) on discs.

The pool's home keeps config.json, the manifests and the catalog; the chunks go to discs
(discs.py). A stream fills the open disc; when the disc is full it is closed (its ISO image
written once and burned) and the stream continues as part N+1 on the next blank disc. No
record straddles discs. A chunk's location is `optical:<label>:<file number>:<byte offset of
its envelope in the file>`, so a restore names the discs it needs (`OpticalPool.discs_of`)
and reads each chunk with one positioned read from the disc's image. Every file carries the
pool's config and each committed set a catalog copy file, so `scan_discs` (after
`scan_home.recover_optical_home`) rebuilds the home from the images alone.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from bingobackup.files import DISK_FULL, write_fully
from bingobackup.format.compression import CompressionSetting
from bingobackup.format.config import PoolConfig
from bingobackup.format.constants import STREAM_TAG as TAG
from bingobackup.format.crypto import DEFAULT_SCRYPT_N
from bingobackup.format.envelope import EnvelopeCodec
from bingobackup.format.manifest import ChunkRef, DiskManifest
from bingobackup.media.discs import (
    STAGING,
    DiscRecord,
    DiscSet,
    OpticalSettings,
    file_name,
    fits_on_disc,
    sectors,
)
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
from bingobackup.storage.errors import PoolError
from bingobackup.storage.localdir import LocalDirBlobStore


class OpticalDiskWriter(StreamDiskWriter):
    pool: OpticalPool
    medium = "optical discs"

    def __init__(self, pool: OpticalPool, set_id: str, volume_id: str, size_bytes: int) -> None:
        super().__init__(pool, set_id, volume_id, size_bytes)
        self._fd: int | None = None
        self._part = 0
        pool.discs.burner.acquire()  # one burner: disks are written one after another
        self._holding_burner = True
        try:
            self._label = pool.discs.open_disc() or pool.discs.start_disc(None)
            self._begin_file(needed=0)
        except BaseException:
            self._release()
            raise

    # -- the stream ------------------------------------------------------------------------
    def _fits(self, extra: int) -> bool:
        disc_bytes = self.pool.discs.settings.disc_bytes
        return fits_on_disc(disc_bytes, self._files, self._others, self._file_bytes + extra)

    def _begin_file(self, needed: int) -> None:
        """Starts the next stream file: on the open disc if it has room, else on a blank disc."""
        discs = self.pool.discs
        start = file_start(self.pool, self.set_id, self.volume_id, self._part)
        self._label, staged = discs.room_for_file(self._label, len(start) + needed, self.pool.config.pool_id)
        self._files, self._file_bytes = len(staged) + 1, 0
        self._others = sum(sectors(p.stat().st_size) for p in staged)
        self._number = self._files
        path = discs.home / STAGING / self._label / file_name(self._number)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._append(start)

    def _append(self, framed: bytes) -> int:
        """Adds a record to the current file; returns its payload's offset in the file. The
        host filesystem full is PoolFullError with the file cut back to its last whole record."""
        assert self._fd is not None
        offset = self._file_bytes + TAG.size
        try:
            write_fully(self._fd, framed, self._file_bytes)
        except OSError as error:
            os.ftruncate(self._fd, self._file_bytes)  # no torn record: earlier ones stay readable
            if error.errno in DISK_FULL:
                raise self.pool.discs.host_full(len(framed)) from None
            raise
        self._file_bytes += len(framed)
        return offset

    def _end_file(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.fsync(fd)
            except OSError as error:
                if error.errno in DISK_FULL:
                    raise self.pool.discs.host_full(0) from None
                raise
            finally:
                os.close(fd)

    def _write(self, framed: bytes) -> int:
        if not self._fits(len(framed)):
            self._end_file()
            self._part += 1
            self._begin_file(len(framed))
        return self._append(framed)

    def _release(self) -> None:
        if self._holding_burner:
            self._holding_burner = False
            self.pool.discs.burner.release()

    def _location(self, envelope_offset: int) -> str:
        return f"optical:{self._label}:{self._number}:{envelope_offset}"

    def _discard(self) -> None:
        # A disc in the making is append-only like the disc it becomes: the cut-off file stays
        # without a trailer (scan skips it) and no manifest names it.
        with self._stream_lock, contextlib.suppress(OSError, PoolError):
            self._end_file()
        self._release()


class OpticalPool(MediaPool):
    kind = "optical"

    def __init__(self, store: BlobStore, config: PoolConfig, codec: EnvelopeCodec, discs: DiscSet) -> None:
        super().__init__(store, config, codec)
        self.discs = discs
        discs.pool_name = config.name

    def open_disk_writer(self, set_id: str, volume_id: str, size_bytes: int) -> OpticalDiskWriter:
        self.manifest_key(set_id, volume_id)
        self.check_config_fits()
        return OpticalDiskWriter(self, set_id, volume_id, size_bytes)

    def _read_envelope(self, ref: ChunkRef) -> bytes:
        scheme, label, number, offset = [*ref.location.split(":"), "", "", ""][:4]
        if scheme != "optical" or not number.isdigit() or not offset.isdigit():
            raise PoolError(
                f"chunk {ref.digest} has location {ref.location!r}, not optical:<disc>:<file>:<offset>"
            )
        return self.discs.read(label, int(number), int(offset), ref.stored_size)

    def discs_of(self, manifest: DiskManifest) -> list[str]:
        """The disc labels a restore of this disk needs, in order."""
        return sorted({ref.location.split(":")[1] for ref in manifest.chunks})

    def require_discs(self, manifest: DiskManifest) -> None:
        """Before a restore: every disc it needs is readable, else one error naming all missing."""
        missing = [
            label
            for label in self.discs_of(manifest)
            if self.discs.image_of(label) is None and not (self.discs.home / STAGING / label).is_dir()
        ]
        if missing:
            raise self.discs.missing_error(missing)

    def close_disc(self) -> DiscRecord | None:
        """Closes the open disc now (end of the backup window): its image is written and burned."""
        with self.discs.burner:
            label = self.discs.open_disc()
            if label is None or not self.discs.staged_files(label):
                return None
            return self.discs.close_disc(label, self.config.pool_id)

    def keep_catalog_copy(self, set_id: str, payload: bytes) -> None:
        """The set's catalog rows as one file of the open disc (burned with it)."""
        framed = catalog_copy_file(self, set_id, payload)
        with self.discs.burner:
            label = self.discs.open_disc() or self.discs.start_disc(None)
            label, staged = self.discs.room_for_file(label, len(framed), self.config.pool_id)
            self.discs.stage_file(label, len(staged) + 1, framed)


def scan_discs(pool: OpticalPool) -> MediaScan:
    """Rebuilds the manifests from the disc images (and the open disc) alone (`pool scan`) and
    returns what was found, with the catalog copies for the catalog to write back."""
    discs = pool.discs
    files = [(label, number) for label in discs.labels() for number in discs.file_numbers(label)]
    streams = (discs.read_file(label, number) for label, number in files)
    return scan_streams(pool, streams, media=len({label for label, _ in files}))


def create_optical_pool(
    home: Path,
    settings: OpticalSettings,
    *,
    chunk_size: int,
    encrypted: bool = False,
    passphrase: str | None = None,
    compression: CompressionSetting = "fast",
    scrypt_n: int = DEFAULT_SCRYPT_N,
) -> OpticalPool:
    """An optical pool whose home (config, manifests, catalog, open disc) is `home`. The home's
    config says `standard` (records framed as in a pack); the kind is the registration's."""
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
    DiscSet.create(Path(home), settings)
    return open_optical_pool(home, passphrase)


def open_optical_pool(
    home: Path,
    passphrase: str | None = None,
    *,
    image_dirs: list[Path] | None = None,
    name: str | None = None,
) -> OpticalPool:
    """`image_dirs`: more directories to find closed discs' images in (read back from discs)."""
    base = open_pool_in(LocalDirBlobStore(Path(home), name or Path(home).name), passphrase)
    return OpticalPool(base.store, base.config, base.codec, DiscSet(Path(home), image_dirs))
