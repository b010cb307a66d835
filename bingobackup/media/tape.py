"""The tape medium interface: what a tape pool uses of a cartridge, whether an emulated one
(tapelib.py) or one loaded in a real Linux `st` drive (tapedrive.py), and the library settings
both read. Its own module so the library and the drive build on it without importing each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field, field_validator

from bingobackup.storage.errors import PoolError


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
    def read_head(self, file_number: int, length: int) -> bytes: ...
