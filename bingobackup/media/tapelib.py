"""An emulated tape library: cartridges as files with fixed-size block framing and filemarks.

A cartridge file `<library>/cartridges/<BARCODE>.tape` is a sequence of records, each a
5-byte header (kind b"B" or b"M", payload length u32 big-endian) and, for a block, exactly
`block_size` bytes (the payload, zero-padded, as a fixed-block tape pads its last block).
b"M" is a filemark and ends a tape file. Writing only appends at end of data; a cartridge
holds `capacity_blocks` blocks. Positioning to (file, block) is one seek from an index of the
filemarks learnt once per cartridge (blocks have a fixed size), the way `mt fsf` / `mt fsr`
position a real drive without reading the data in between. A library whose settings name `drives`
holds real cartridges instead: one per Linux tape drive (tapedrive.py, untested on hardware here).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import BinaryIO

from bingobackup.files import DISK_FULL, write_fully
from bingobackup.format.constants import TAPE_BLOCK as BLOCK
from bingobackup.format.constants import TAPE_FILEMARK as FILEMARK
from bingobackup.format.constants import TAPE_LIBRARY_FILE as LIBRARY_FILE
from bingobackup.format.constants import TAPE_RECORD as _HEADER
from bingobackup.media.st_drive import DriveIO, TapeDrive
from bingobackup.media.tape import CartridgeFullError, LibrarySettings, TapeMedium
from bingobackup.storage.errors import PoolError, PoolFullError

__all__ = ["Cartridge", "CartridgeFullError", "LibrarySettings", "TapeLibrary", "TapeMedium"]


class Cartridge:
    """One cartridge. Writers are serialised per drive by the pool; reads may run concurrently.

    An index of where every tape file starts and how many blocks it holds is learnt once,
    header by header, when the cartridge is first used, and then kept up to date by appends
    (and extended if the file grew through another library object). Positioning to block B of
    file N is then one seek, like `mt fsf N; mt fsr B` on a drive, and `files` / `free_blocks`
    read no header at all.
    """

    end_of_medium = False  # the emulation refuses a write beyond capacity instead

    def __init__(self, path: Path, settings: LibrarySettings, library: TapeLibrary | None = None) -> None:
        self.path = path
        self.barcode = path.stem
        self.block_size = settings.block_size
        self.capacity_blocks = settings.capacity_bytes // settings.block_size
        self._record = _HEADER.size + self.block_size
        self._library = library
        self._lock = threading.Lock()
        self._forget()

    # -- the index -------------------------------------------------------------------------
    def _forget(self) -> None:
        self._starts = [0]  # byte position of each tape file's first record; the last: the open file
        self._blocks_in = [0]  # blocks of each tape file
        self._blocks = 0
        self._end = 0  # after the last whole record
        self._seen: tuple[int, int, int] | None = None  # (inode, mtime, size) the index describes

    def _read_header(self, tape: BinaryIO, position: int) -> tuple[bytes, int]:
        tape.seek(position)
        kind, length = _HEADER.unpack(tape.read(_HEADER.size))
        return kind, length

    def _sync(self) -> None:
        """Brings the index up to the cartridge file: nothing to do unless it changed on disk."""
        info = self.path.stat()
        seen = (info.st_ino, info.st_mtime_ns, info.st_size)
        if seen == self._seen:
            return
        if self._seen is None or info.st_ino != self._seen[0] or info.st_size < self._end:
            self._forget()  # another cartridge file under this name: learn it again
        with self.path.open("rb") as tape:
            position = self._end
            while position + _HEADER.size <= info.st_size:
                kind, _ = self._read_header(tape, position)
                if kind == BLOCK and position + self._record <= info.st_size:
                    self._blocks_in[-1] += 1
                    self._blocks += 1
                    position += self._record
                elif kind == FILEMARK:
                    position += _HEADER.size
                    self._starts.append(position)
                    self._blocks_in.append(0)
                else:
                    break  # a record torn by a crash: the next append cuts it off
            self._end = position
        self._seen = seen

    def _note_appended(self, blocks: int, filemark: bool) -> None:
        self._blocks_in[-1] += blocks
        self._blocks += blocks
        self._end += blocks * self._record
        if filemark:
            self._end += _HEADER.size
            self._starts.append(self._end)
            self._blocks_in.append(0)

    def _cut_open_file(self) -> None:
        """Forgets the blocks after the last filemark (they were cut off the cartridge)."""
        self._blocks -= self._blocks_in[-1]
        self._blocks_in[-1] = 0
        self._end = self._starts[-1]

    @property
    def blocks_used(self) -> int:
        with self._lock:
            self._sync()
            return self._blocks

    @property
    def files(self) -> int:
        """Complete tape files (each ended by a filemark)."""
        with self._lock:
            self._sync()
            return len(self._starts) - 1

    @property
    def free_blocks(self) -> int:
        return self.capacity_blocks - self.blocks_used

    # -- writing ---------------------------------------------------------------------------
    def append(self, payloads: list[bytes], filemark: bool) -> None:
        """Appends blocks (each <= block_size) and optionally a filemark, durably.

        The host filesystem full (ENOSPC, EDQUOT) is PoolFullError, after the cartridge is cut
        back to its last filemark: the file being written is dropped whole (its stream has no
        trailer yet, so no manifest names it), no torn record is left, every earlier file stays
        readable and the next file starts on a clean boundary."""
        data = b"".join(_HEADER.pack(BLOCK, len(p)) + p.ljust(self.block_size, b"\0") for p in payloads)
        if filemark:
            data += _HEADER.pack(FILEMARK, 0)
        with self._lock:
            self._sync()
            free = self.capacity_blocks - self._blocks
            if len(payloads) > free:
                raise CartridgeFullError(f"cartridge {self.barcode} has {free} blocks free")
            fd = os.open(self.path, os.O_WRONLY)
            try:
                try:
                    os.ftruncate(fd, self._end)  # a record torn by an earlier crash goes
                    write_fully(fd, data, self._end)
                    os.fsync(fd)
                except OSError as error:
                    full = error.errno in DISK_FULL
                    if full:
                        self._cut_open_file()
                    os.ftruncate(fd, self._end)
                    self._seen = None  # learn the cut-back state again on the next use
                    if full:
                        raise self._host_full(len(data)) from None
                    raise
                self._note_appended(len(payloads), filemark)
                info = os.fstat(fd)
                self._seen = (info.st_ino, info.st_mtime_ns, info.st_size)
            finally:
                os.close(fd)

    def _host_full(self, needed: int) -> PoolFullError:
        pool = self._library.pool_name if self._library else self.path.parent.parent.name
        return PoolFullError(
            pool,
            needed,
            f"the filesystem holding cartridge {self.barcode} ({self.path.parent}) has no space left",
            "the file being written was cut off the cartridge and earlier files are intact; free "
            "space on that filesystem (or move the library to a larger one) and run the backup again",
        )

    # -- reading ---------------------------------------------------------------------------
    def _blocks_of(self, file_number: int, first: int, wanted: int | None) -> bytes:
        """Payload bytes of file `file_number` from its block `first` on, until `wanted` bytes
        (None: the whole file) are read; positions with one seek from the index."""
        with self._lock:
            self._sync()
            if file_number >= len(self._starts):
                return b""
            base, count = self._starts[file_number], self._blocks_in[file_number]
        out = bytearray()
        with self.path.open("rb") as tape:
            for block in range(first, count):
                if wanted is not None and len(out) >= wanted:
                    break
                _, size = self._read_header(tape, base + block * self._record)
                out += tape.read(size)
        return bytes(out)

    def read(self, file_number: int, start: int, length: int) -> bytes:
        """`length` payload bytes of tape file `file_number` from byte `start` (positions first)."""
        first, skip = divmod(start, self.block_size)
        data = self._blocks_of(file_number, first, skip + length)[skip : skip + length]
        if len(data) != length:
            raise PoolError(
                f"cartridge {self.barcode} file {file_number} ends before byte {start + length}; the "
                "cartridge is damaged or not the one the catalog names"
            )
        return data

    def read_file(self, file_number: int) -> bytes:
        """A whole tape file (for `pool scan`)."""
        return self._blocks_of(file_number, 0, None)

    def read_head(self, file_number: int, length: int) -> bytes:
        """Up to `length` bytes from the start of a tape file (its header and pool config)."""
        return self._blocks_of(file_number, 0, length)[:length]


class TapeLibrary:
    """The cartridges of one library directory, in barcode order; one drive (a lock).

    Each cartridge is loaded (its index learnt) once per library object and kept."""

    def __init__(self, root: Path, drive_io: DriveIO | None = None) -> None:
        self.root = Path(root)
        try:
            self.settings = LibrarySettings.model_validate_json((self.root / LIBRARY_FILE).read_text())
        except FileNotFoundError:
            raise PoolError(
                f"{self.root} is not a tape library (no {LIBRARY_FILE}); create it with "
                "`bingobackup pool create --kind tape`"
            ) from None
        self.drive = threading.Lock()
        self.pool_name = self.root.name  # the pool sets its own name: messages name the pool
        self._drives = self._open_drives(drive_io)
        self._loaded: dict[str, Cartridge] = {}
        self._loading = threading.Lock()

    def _open_drives(self, drive_io: DriveIO | None) -> dict[str, TapeMedium]:
        if not self.settings.drives:
            return {}
        return {
            barcode: TapeDrive(device, barcode, self.settings, drive_io)
            for barcode, device in sorted(self.settings.drives.items())
        }

    @classmethod
    def create(
        cls, root: Path, settings: LibrarySettings, barcodes: list[str], drive_io: DriveIO | None = None
    ) -> TapeLibrary:
        """A library directory; with `settings.drives`, its cartridges are those loaded in them."""
        if settings.drives and sorted(barcodes) != sorted(settings.drives):
            raise ValueError(
                f"name the cartridge in each drive: barcodes {barcodes} for drives {settings.drives}"
            )
        for barcode in barcodes:
            _check_barcode(barcode)
        (Path(root) / "cartridges").mkdir(parents=True, exist_ok=True)
        (Path(root) / LIBRARY_FILE).write_text(settings.model_dump_json())
        library = cls(root, drive_io)
        if not settings.drives:
            for barcode in barcodes:
                library.add_cartridge(barcode)
        return library

    def add_cartridge(self, barcode: str) -> Cartridge:
        _check_barcode(barcode)
        path = self.root / "cartridges" / f"{barcode}.tape"
        path.touch(exist_ok=True)
        return self._load(path)

    def _load(self, path: Path) -> Cartridge:
        with self._loading:
            if path.stem not in self._loaded:
                self._loaded[path.stem] = Cartridge(path, self.settings, self)
            return self._loaded[path.stem]

    def cartridges(self) -> list[TapeMedium]:
        if self._drives:
            return list(self._drives.values())
        return [self._load(p) for p in sorted((self.root / "cartridges").glob("*.tape"))]

    def cartridge(self, barcode: str) -> TapeMedium:
        if self._drives:
            if barcode not in self._drives:
                raise PoolError(
                    f"cartridge {barcode} is in none of the drives {self.settings.drives}; load it and "
                    f"record which drive holds it in {self.root / LIBRARY_FILE}"
                )
            return self._drives[barcode]
        path = self.root / "cartridges" / f"{barcode}.tape"
        if not path.is_file():
            raise PoolError(
                f"cartridge {barcode} is not in library {self.root}; load it (copy its .tape file into "
                f"{self.root / 'cartridges'}) and run again"
            )
        return self._load(path)

    def describe(self) -> str:
        return json.dumps({c.barcode: c.free_blocks for c in self.cartridges()})


def _check_barcode(barcode: str) -> None:
    if not barcode.isalnum():
        raise ValueError(f"barcode {barcode!r} must be letters and digits (e.g. BB0001L8)")
