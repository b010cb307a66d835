"""Optical discs for the optical pool: one open disc staged in the pool home, closed discs as
ISO 9660 images (pycdlib) in an output directory, optionally handed to a burner command.

A disc holds stream files `F0001.BIN`, `F0002.BIN`, … (stream.py) and `DISC.JSN` naming the
pool and the disc, with the pool's optical settings (so `pool scan` rebuilds `optical.json`). While a disc is open its files grow under `<home>/staging/<LABEL>/` (fsynced
on every commit, so a committed backup is durable before its disc is burned). Closing writes
`<output>/<LABEL>.iso` once (never rewritten: an existing image is an error), records
`<home>/discs/<LABEL>.json` and runs the burner. Reading finds a disc's image in any of the
image directories, or the open disc's staging files.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import shlex
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from bingobackup.files import DISK_FULL, fsync_path, write_fully
from bingobackup.format.constants import DISC_INFO, OPTICAL_FILE
from bingobackup.format.constants import STREAM_HEADER as HEADER
from bingobackup.format.records import parse_stream
from bingobackup.storage.errors import PoolError, PoolFullError

SECTOR = 2048
STAGING, DISCS = "staging", "discs"
# ISO 9660 level 1 keeps a file in one extent (< 4 GiB): a longer stream part continues in a
# new file on the same disc.
MAX_FILE_BYTES = 1 << 30
DISC_SIZES = {"dvd": 4_700_000_000, "bd25": 25_025_314_816, "bd50": 50_050_629_632, "bd100": 100_103_356_416}


def parse_disc_size(text: str) -> int:
    """dvd | bd25 | bd50 | bd100 | a byte count (custom media, tests)."""
    if text.lower() in DISC_SIZES:
        return DISC_SIZES[text.lower()]
    if text.isdigit() and int(text) >= 1 << 20:
        return int(text)
    raise ValueError(f"disc size {text!r}: use dvd, bd25, bd50, bd100 or a byte count of at least 1 MiB")


def iso_overhead(files: int) -> int:
    """Bytes an image needs beyond its files' sectors: system area, volume descriptors, path
    tables, directory records (measured with pycdlib, rounded up generously)."""
    return (64 << 10) + files * (SECTOR + 64)


def sectors(size: int) -> int:
    return -(-size // SECTOR) * SECTOR


def file_name(number: int) -> str:
    return f"F{number:04d}.BIN"


def fits_on_disc(disc_bytes: int, files: int, others: int, file_bytes: int) -> bool:
    """Whether a disc of `files` files still fits when its last one is `file_bytes` long and
    the others take `others` bytes of sectors."""
    return file_bytes <= MAX_FILE_BYTES and iso_overhead(files) + others + sectors(file_bytes) <= disc_bytes


class OpticalSettings(BaseModel):
    disc_bytes: int = Field(ge=1 << 20, description="capacity of one disc")
    label_prefix: str = Field(pattern=r"^[A-Z0-9_]{1,27}$", description="disc labels are PREFIX0001, …")
    output_dir: str = Field(description="where closed discs' ISO images are written")
    burn_command: str | None = Field(default=None, description="run with the image path appended")
    max_discs: int | None = Field(default=None, ge=1, description="blank discs the pool may use")

    @staticmethod
    def prefix_for(pool_name: str) -> str:
        return re.sub(r"[^A-Z0-9]", "_", pool_name.upper())[:26] + "_"


class DiscFile(BaseModel):
    number: int
    set_id: str
    volume_id: str
    part: int
    size: int


class DiscRecord(BaseModel):
    """What a closed disc holds; written once when it is closed."""

    label: str
    sequence: int
    image: str
    image_bytes: int
    files: list[DiscFile]
    closed_at: datetime


class DiscSet:
    """The discs of one optical pool. Thread-safe for readers; one writer at a time holds `burner`."""

    def __init__(self, home: Path, image_dirs: list[Path] | None = None) -> None:
        self.home = Path(home)
        try:
            self.settings = OpticalSettings.model_validate_json((self.home / OPTICAL_FILE).read_text())
        except FileNotFoundError:
            raise PoolError(
                f"{self.home} is not an optical pool (no {OPTICAL_FILE}); create it with "
                "`bingobackup pool create --kind optical`"
            ) from None
        self.output = Path(self.settings.output_dir)
        self.image_dirs = [self.output, *(image_dirs or [])]
        self.burner = threading.Lock()
        self.pool_name = self.home.name  # the pool sets its own name: messages name the pool
        self._extents: dict[Path, dict[str, int]] = {}
        self._extents_lock = threading.Lock()

    @classmethod
    def create(cls, home: Path, settings: OpticalSettings) -> DiscSet:
        Path(home).mkdir(parents=True, exist_ok=True)
        Path(settings.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(home) / OPTICAL_FILE).write_text(settings.model_dump_json())
        return cls(home)

    # -- the discs -------------------------------------------------------------------------
    def label(self, sequence: int) -> str:
        return f"{self.settings.label_prefix}{sequence:04d}"

    def closed(self) -> list[DiscRecord]:
        found = sorted((self.home / DISCS).glob("*.json"))
        return [DiscRecord.model_validate_json(p.read_text()) for p in found]

    def open_disc(self) -> str | None:
        """The label of the disc being filled, if any."""
        staged = sorted(p.name for p in (self.home / STAGING).glob("*") if p.is_dir())
        return staged[-1] if staged else None

    def staged_files(self, label: str) -> list[Path]:
        return sorted((self.home / STAGING / label).glob("F*.BIN"))

    def used_bytes(self, label: str, extra_files: int = 0) -> int:
        """Image bytes the open disc needs, counting `extra_files` more (empty) files."""
        files = self.staged_files(label)
        return iso_overhead(len(files) + extra_files + 1) + sum(sectors(p.stat().st_size) for p in files)

    def room_for_file(self, label: str, needed: int, pool_id: str) -> tuple[str, list[Path]]:
        """The disc a new file whose first record is `needed` bytes starts on, with its staged
        files: `label` if it has room, else the next blank disc after closing `label`."""
        for attempt in range(2):
            staged = self.staged_files(label)
            others = sum(sectors(p.stat().st_size) for p in staged)
            if fits_on_disc(self.settings.disc_bytes, len(staged) + 1, others, needed):
                return label, staged
            if attempt or not staged:
                break
            self.close_disc(label, pool_id)
            label = self.start_disc(label)
        raise PoolError(
            f"a record of {needed} bytes does not fit on a blank disc of {self.settings.disc_bytes} "
            "bytes; create the pool with larger discs"
        )

    def stage_file(self, label: str, number: int, data: bytes) -> None:
        """A whole file of the open disc, durably; nothing of it is left if the host is full."""
        path = self.home / STAGING / label / file_name(number)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            write_fully(fd, data, 0)
            os.fsync(fd)
        except OSError as error:
            path.unlink(missing_ok=True)
            if error.errno in DISK_FULL:
                raise self.host_full(len(data)) from None
            raise
        finally:
            os.close(fd)

    def host_full(self, needed: int) -> PoolFullError:
        """The filesystem holding the open disc's staging files is full."""
        return PoolFullError(
            self.pool_name,
            needed,
            f"the filesystem holding the open disc's files ({self.home / STAGING}) has no space left",
            "earlier files of the disc are intact; free space on that filesystem and run the backup again",
        )

    def start_disc(self, after: str | None) -> str:
        """Opens the next blank disc; PoolFullError when the pool may use no more."""
        done = len(self.closed())
        limit = self.settings.max_discs
        if limit is not None and done >= limit:
            where = f"after disc {after}" if after else "in the pool"
            raise PoolFullError(
                self.pool_name,
                0,
                f"no blank disc left {where}: all {limit} discs the pool may use are written",
                "allow more discs (raise the pool's max discs) or back up to a new optical pool",
            )
        label = self.label(done + 1)
        (self.home / STAGING / label).mkdir(parents=True, exist_ok=True)
        return label

    # -- closing ---------------------------------------------------------------------------
    def close_disc(self, label: str, pool_id: str) -> DiscRecord:
        """Writes the disc's image once, records what it holds, burns it, drops the staging."""
        import pycdlib

        image = self.output / f"{label}.iso"
        if image.exists():
            raise PoolError(
                f"disc image {image} already exists and a closed disc is never rewritten; move it "
                "away only if it is not a disc of this pool"
            )
        staged = self.staged_files(label)
        files = [_describe(path) for path in staged]
        info = json.dumps(
            {"pool_id": pool_id, "label": label, "files": len(files), "settings": self.settings.model_dump()}
        ).encode()
        temp = self.output / f".tmp-{label}.iso"
        iso = pycdlib.PyCdlib()
        iso.new(interchange_level=1, vol_ident=label)
        with contextlib.ExitStack() as handles:
            iso.add_fp(io.BytesIO(info), len(info), f"/{DISC_INFO};1")
            for path in staged:
                iso.add_fp(handles.enter_context(path.open("rb")), path.stat().st_size, f"/{path.name};1")
            try:
                iso.write(str(temp))
                fsync_path(temp)
            except OSError as error:
                temp.unlink(missing_ok=True)
                if error.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise PoolFullError(
                        self.pool_name,
                        self.used_bytes(label),
                        f"no space for disc image {image.name} in {self.output}",
                        "free space in the image directory (burn and remove closed images) and run again",
                    ) from None
                raise
            finally:
                iso.close()
        os.replace(temp, image)
        record = self.record_closed(label, image, files, datetime.now(UTC))
        for path in staged:
            path.unlink()
        (self.home / STAGING / label).rmdir()
        if self.settings.burn_command:
            self._burn(image)
        return record

    def record_closed(
        self, label: str, image: Path, files: list[DiscFile], closed_at: datetime
    ) -> DiscRecord:
        """Saves the record of closed disc `label` (its image and files) in the pool home."""
        record = DiscRecord(
            label=label,
            sequence=int(label[len(self.settings.label_prefix) :]),
            image=image.name,
            image_bytes=image.stat().st_size,
            files=files,
            closed_at=closed_at,
        )
        (self.home / DISCS).mkdir(parents=True, exist_ok=True)
        (self.home / DISCS / f"{label}.json").write_text(record.model_dump_json(indent=1))
        return record

    def _burn(self, image: Path) -> None:
        command = [*shlex.split(self.settings.burn_command or ""), str(image)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, check=False)
        except OSError as error:
            raise PoolError(
                f"burner command {command[0]!r} could not run ({error.strerror}); {_BURN_AGAIN}"
            ) from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip()[-300:]
            raise PoolError(
                f"burner command for {image.name} exited with {done.returncode}: {tail or 'no output'}; "
                f"{_BURN_AGAIN}"
            )

    # -- reading ---------------------------------------------------------------------------
    def image_of(self, label: str) -> Path | None:
        for directory in self.image_dirs:
            if (directory / f"{label}.iso").is_file():
                return directory / f"{label}.iso"
        return None

    def read(self, label: str, number: int, start: int, length: int) -> bytes:
        """`length` bytes of stream file `number` of disc `label` from byte `start`."""
        image = self.image_of(label)
        if image is not None:
            path, base = image, self._extent(image, file_name(number)) + start
        elif (self.home / STAGING / label / file_name(number)).is_file():
            path, base = self.home / STAGING / label / file_name(number), start
        else:
            raise self.missing_error([label])
        with path.open("rb") as handle:
            data = os.pread(handle.fileno(), length, base)
        if len(data) != length:
            raise PoolError(
                f"disc {label} file {number} ends before byte {start + length}; the image is damaged"
            )
        return data

    def labels(self) -> list[str]:
        """Every disc of this pool readable here: images in the image directories and the open disc."""
        prefix = self.settings.label_prefix
        found = {p.stem for d in self.image_dirs for p in d.glob(f"{prefix}*.iso")}
        return sorted(found | {p.name for p in (self.home / STAGING).glob("*") if p.is_dir()})

    def file_numbers(self, label: str) -> list[int]:
        """The stream files of a disc, in order."""
        image = self.image_of(label)
        if image is None:
            return [int(p.stem[1:]) for p in self.staged_files(label)]
        return sorted(int(n[1:5]) for n in self._extents_of(image) if n.endswith(".BIN"))

    def read_file(self, label: str, number: int) -> bytes:
        return self.read(label, number, 0, self.file_size(label, number))

    def file_size(self, label: str, number: int) -> int:
        image = self.image_of(label)
        if image is None:
            return (self.home / STAGING / label / file_name(number)).stat().st_size
        return self._extents_of(image)[f"{file_name(number)}:size"]

    def read_head(self, label: str, number: int, length: int) -> bytes:
        """Up to `length` bytes from the start of a stream file (its header and pool config)."""
        return self.read(label, number, 0, min(length, self.file_size(label, number)))

    def missing_error(self, labels: list[str]) -> PoolError:
        searched = ", ".join(str(d) for d in self.image_dirs)
        return PoolError(
            f"disc(s) {', '.join(labels)} are needed but their images ({', '.join(f'{x}.iso' for x in labels)}) "
            f"are not in {searched}; copy the images (or read the discs into images) there and run again"
        )

    def _extent(self, image: Path, name: str) -> int:
        extents = self._extents_of(image)
        if name not in extents:
            raise PoolError(f"disc image {image} has no file {name}; it is not the disc the catalog names")
        return extents[name]

    def _extents_of(self, image: Path) -> dict[str, int]:
        with self._extents_lock:
            if image not in self._extents:
                self._extents[image] = iso_extents(image)
            return self._extents[image]


def iso_extents(image: Path) -> dict[str, int]:
    """Byte offset (and, under `NAME:size`, size) of every file of an image: ISO 9660 files
    are contiguous, so a chunk is read with one positioned read."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open(str(image))
    try:
        extents: dict[str, int] = {}
        for child in iso.list_children(iso_path="/"):
            if child.is_file():
                name = child.file_identifier().decode().split(";")[0]
                extents[name] = child.extent_location() * SECTOR
                extents[f"{name}:size"] = child.get_data_length()
        return extents
    finally:
        iso.close()


def read_disc_info(image: Path) -> dict[str, Any]:
    """The DISC.JSN of a disc image: pool id, label, file count and (since scan rebuilds
    homes) the pool's optical settings."""
    extents = iso_extents(image)
    if DISC_INFO not in extents:
        raise PoolError(f"{image} has no {DISC_INFO}; it is not a disc of a bingobackup optical pool")
    with image.open("rb") as handle:
        data = os.pread(handle.fileno(), extents[f"{DISC_INFO}:size"], extents[DISC_INFO])
    info: dict[str, Any] = json.loads(data)
    return info


_BURN_AGAIN = "the image is kept: burn it by hand, or fix the command and burn it again"


def _describe(path: Path) -> DiscFile:
    with path.open("rb") as handle:
        head = handle.read(4096)
    return describe_file(int(path.stem[1:]), head, path.stat().st_size)


def describe_file(number: int, head: bytes, size: int) -> DiscFile:
    """What a stream file holds, from its first bytes (the header record comes first)."""
    fields: dict[str, Any] = next(
        (json.loads(payload) for tag, _, payload in parse_stream(head) if tag == HEADER), {}
    )
    return DiscFile(
        number=number,
        set_id=fields.get("set_id", "?"),
        volume_id=fields.get("volume_id", "?"),
        part=fields.get("part", 0),
        size=size,
    )
