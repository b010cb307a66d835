"""An emulated tape library: cartridges as files with fixed-size block framing and filemarks.

A cartridge file `<library>/cartridges/<BARCODE>.tape` is a sequence of records, each a
5-byte header (kind b"B" or b"M", payload length u32 big-endian) and, for a block, exactly
`block_size` bytes (the payload, zero-padded, as a fixed-block tape pads its last block).
b"M" is a filemark and ends a tape file. Writing only appends at end of data; a cartridge
holds `capacity_blocks` blocks. Positioning to (file, block) skips records by their fixed
size, the way `mt fsf` / `mt fsr` do on a real drive. A library whose settings name `drives`
holds real cartridges instead: one per Linux tape drive (tapedrive.py, untested on hardware here).
"""

from __future__ import annotations

import json
import os
import struct
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, Field, field_validator

from bingobackup.pools.errors import PoolError

if TYPE_CHECKING:
    from bingobackup.pools.tapedrive import DriveIO

_HEADER = struct.Struct(">cI")
BLOCK, FILEMARK = b"B", b"M"
LIBRARY_FILE = "library.json"


class LibrarySettings(BaseModel):
    block_size: int = Field(default=256 << 10, ge=512, le=16 << 20)
    capacity_bytes: int = Field(ge=1 << 20, description="bytes one cartridge holds")
    drives: dict[str, str] = Field(
        default_factory=dict,
        description="real drives: barcode of the cartridge loaded -> non-rewinding device (/dev/nstN)",
    )

    @field_validator("drives")
    @classmethod
    def _non_rewinding(cls, value: dict[str, str]) -> dict[str, str]:
        for barcode, device in value.items():
            if Path(device).name.startswith("st"):
                raise ValueError(
                    f"{device} (cartridge {barcode}) rewinds on every close, which would overwrite the "
                    f"cartridge from the start; use the non-rewinding /dev/n{Path(device).name}"
                )
        return value


class CartridgeFullError(PoolError):
    pass


class TapeMedium(Protocol):
    """What the tape pool uses of a cartridge: an emulated one or one in a real drive."""

    barcode: str
    block_size: int
    capacity_blocks: int
    end_of_medium: bool  # past the drive's early warning: finish the file, go on elsewhere

    @property
    def blocks_used(self) -> int: ...
    @property
    def files(self) -> int: ...
    @property
    def free_blocks(self) -> int: ...
    def append(self, payloads: list[bytes], filemark: bool) -> None: ...
    def read(self, file_number: int, start: int, length: int) -> bytes: ...
    def read_file(self, file_number: int) -> bytes: ...


class Cartridge:
    """One cartridge. Not thread-safe: the pool serialises writers per drive."""

    end_of_medium = False  # the emulation refuses a write beyond capacity instead

    def __init__(self, path: Path, settings: LibrarySettings) -> None:
        self.path = path
        self.barcode = path.stem
        self.block_size = settings.block_size
        self.capacity_blocks = settings.capacity_bytes // settings.block_size
        self._record = _HEADER.size + self.block_size

    def _records(self) -> list[tuple[bytes, int]]:
        """(kind, file offset of the record) of every record, read header by header."""
        out: list[tuple[bytes, int]] = []
        with self.path.open("rb") as tape:
            position = 0
            while header := tape.read(_HEADER.size):
                kind, _ = _HEADER.unpack(header)
                out.append((kind, position))
                position += self._record if kind == BLOCK else _HEADER.size
                tape.seek(position)
        return out

    @property
    def blocks_used(self) -> int:
        return sum(1 for kind, _ in self._records() if kind == BLOCK)

    @property
    def files(self) -> int:
        """Complete tape files (each ended by a filemark)."""
        return sum(1 for kind, _ in self._records() if kind == FILEMARK)

    @property
    def free_blocks(self) -> int:
        return self.capacity_blocks - self.blocks_used

    def append(self, payloads: list[bytes], filemark: bool) -> None:
        """Appends blocks (each <= block_size) and optionally a filemark, durably."""
        if len(payloads) > self.free_blocks:
            raise CartridgeFullError(f"cartridge {self.barcode} has {self.free_blocks} blocks free")
        with self.path.open("ab") as tape:
            for payload in payloads:
                tape.write(_HEADER.pack(BLOCK, len(payload)) + payload.ljust(self.block_size, b"\0"))
            if filemark:
                tape.write(_HEADER.pack(FILEMARK, 0))
            tape.flush()
            os.fsync(tape.fileno())

    def read(self, file_number: int, start: int, length: int) -> bytes:
        """`length` payload bytes of tape file `file_number` from byte `start` (positions first)."""
        out = bytearray()
        current, block_in_file = 0, 0
        first, skip = divmod(start, self.block_size)
        with self.path.open("rb") as tape:
            for kind, position in self._records():
                if kind == FILEMARK:
                    current += 1
                    block_in_file = 0
                    if current > file_number:
                        break
                    continue
                if current == file_number and block_in_file >= first:
                    tape.seek(position)
                    _, size = _HEADER.unpack(tape.read(_HEADER.size))
                    out += tape.read(size)
                    if len(out) >= skip + length:
                        break
                block_in_file += 1
        data = bytes(out[skip : skip + length])
        if len(data) != length:
            raise PoolError(
                f"cartridge {self.barcode} file {file_number} ends before byte {start + length}; the "
                "cartridge is damaged or not the one the catalog names"
            )
        return data

    def read_file(self, file_number: int) -> bytes:
        """A whole tape file (for `pool scan`)."""
        out = bytearray()
        current = 0
        with self.path.open("rb") as tape:
            for kind, position in self._records():
                if kind == FILEMARK:
                    current += 1
                    if current > file_number:
                        break
                elif current == file_number:
                    tape.seek(position)
                    _, size = _HEADER.unpack(tape.read(_HEADER.size))
                    out += tape.read(size)
        return bytes(out)


class TapeLibrary:
    """The cartridges of one library directory, in barcode order; one drive (a lock)."""

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
        self._drives = self._open_drives(drive_io)

    def _open_drives(self, drive_io: DriveIO | None) -> dict[str, TapeMedium]:
        if not self.settings.drives:
            return {}
        from bingobackup.pools.tapedrive import TapeDrive  # it builds on this module

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
        return Cartridge(path, self.settings)

    def cartridges(self) -> list[TapeMedium]:
        if self._drives:
            return list(self._drives.values())
        return [Cartridge(p, self.settings) for p in sorted((self.root / "cartridges").glob("*.tape"))]

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
        return Cartridge(path, self.settings)

    def describe(self) -> str:
        return json.dumps({c.barcode: c.free_blocks for c in self.cartridges()})


def _check_barcode(barcode: str) -> None:
    if not barcode.isalnum():
        raise ValueError(f"barcode {barcode!r} must be letters and digits (e.g. BB0001L8)")
