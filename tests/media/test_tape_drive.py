"""A real Linux tape drive behind the tape pool, without a drive: the exact MTIOCTOP ops and
struct packing recorded over a regular file, ENOSPC mapped to the cartridge's end, and a disk
backed up across two "drives" (an in-test emulation of the st driver's semantics) restored
byte-identical and rebuilt by `scan` from the tapes alone."""

from __future__ import annotations

import errno
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.media import backup, image, restored_sha
from support.pools import CHUNK
from typer.testing import CliRunner

from bingobackup.cli.main import app
from bingobackup.media.st_drive import (
    MTGET,
    MTIOCGET,
    MTIOCPOS,
    MTIOCTOP,
    MTOP,
    MTPOS,
    DriveIO,
    MtOp,
    TapeDrive,
)
from bingobackup.media.tapelib import CartridgeFullError, LibrarySettings, TapeLibrary
from bingobackup.pools.tapepool import TapePool, create_tape_pool, open_tape_pool, scan_library
from bingobackup.resources.models import User
from bingobackup.resources.pools import TapeOptions, create_registered_pool, open_registered_pool
from bingobackup.resources.store import InMemoryRegistryStore
from bingobackup.storage.errors import PoolError

BLOCK = 16 << 10


def settings(capacity: int = 1 << 20) -> LibrarySettings:
    return LibrarySettings(block_size=BLOCK, capacity_bytes=capacity)


@dataclass
class Recorder:
    """ioctl replaced: remembers every (request, op, count) and answers MTIOCGET / MTIOCPOS."""

    fileno: int = 0
    blkno: int = 0
    logical_block: int = 0
    calls: list[tuple[int, bytes]] = field(default_factory=list)

    def ioctl(self, fd: int, request: int, arg: bytes) -> bytes:
        self.calls.append((request, arg))
        if request == MTIOCGET:
            return MTGET.pack(0, 0, 0, 0, 0, self.fileno, self.blkno)
        if request == MTIOCPOS:
            return MTPOS.pack(self.logical_block)
        return arg

    def ops(self) -> list[tuple[MtOp, int]]:
        return [
            (MtOp(op), count)
            for request, arg in self.calls
            if request == MTIOCTOP
            for op, count in [MTOP.unpack(arg)]
        ]


def drive_over_file(tmp_path: Path, recorder: Recorder, **io: object) -> TapeDrive:
    device = tmp_path / "nst0"
    device.touch()
    return TapeDrive(str(device), "BB0001L8", settings(), DriveIO(ioctl=recorder.ioctl, **io))  # type: ignore[arg-type]


def test_request_numbers_and_mtop_packing_follow_linux_mtio_h() -> None:
    # _IOW('m', 1, struct mtop), _IOR('m', 2, struct mtget), _IOR('m', 3, struct mtpos) on 64-bit x86/arm
    assert (MTIOCTOP, MTIOCGET, MTIOCPOS) == (0x40086D01, 0x80306D02, 0x80086D03)
    packed = MTOP.pack(MtOp.WEOF, 3)  # short mt_op, 2 bytes padding, int mt_count
    assert packed == (5).to_bytes(2, sys.byteorder) + bytes(2) + (3).to_bytes(4, sys.byteorder)


def test_append_writes_whole_padded_blocks_at_end_of_data_then_a_filemark(tmp_path: Path) -> None:
    recorder = Recorder(fileno=2, logical_block=42)  # at end of data: 2 files, 40 blocks
    drive = drive_over_file(tmp_path, recorder)
    assert (drive.files, drive.blocks_used) == (2, 40)
    drive.append([b"a" * BLOCK, b"tail"], filemark=True)
    assert recorder.ops() == [(MtOp.SETBLK, BLOCK), (MtOp.EOM, 1), (MtOp.WEOF, 1)]
    assert (tmp_path / "nst0").read_bytes() == b"a" * BLOCK + b"tail".ljust(BLOCK, b"\0")
    assert (drive.files, drive.blocks_used, drive.free_blocks) == (3, 42, 64 - 42)


def test_read_rewinds_when_the_position_is_unknown_and_spaces_forward(tmp_path: Path) -> None:
    recorder = Recorder(fileno=-1, blkno=-1)
    drive = drive_over_file(tmp_path, recorder, read=lambda fd, size: b"z" * size)
    assert drive.read(3, 2 * BLOCK + 7, 10) == b"z" * 10
    assert recorder.ops() == [(MtOp.SETBLK, BLOCK), (MtOp.REW, 1), (MtOp.FSF, 3), (MtOp.FSR, 2)]


def test_read_spaces_relative_to_where_the_drive_is(tmp_path: Path) -> None:
    recorder = Recorder(fileno=5, blkno=3)
    drive = drive_over_file(tmp_path, recorder, read=lambda fd, size: b"z" * size)
    drive.read(2, BLOCK, 1)  # back over 4 filemarks, forward over one: start of file 2
    drive.read(7, 0, 1)
    recorder.fileno, recorder.blkno = 7, 1
    drive.read(7, 4 * BLOCK, 1)  # same file, further on: records only
    assert recorder.ops()[1:] == [(MtOp.BSF, 4), (MtOp.FSF, 1), (MtOp.FSR, 1), (MtOp.FSF, 2), (MtOp.FSR, 3)]


def test_enospc_is_the_early_warning_once_and_the_end_of_the_cartridge_twice(tmp_path: Path) -> None:
    answers: list[OSError | int] = [OSError(errno.ENOSPC, "No space left on device"), BLOCK]

    def write(fd: int, data: bytes) -> int:
        answer = answers.pop(0) if answers else OSError(errno.ENOSPC, "No space left on device")
        if isinstance(answer, OSError):
            raise answer
        return answer

    drive = drive_over_file(tmp_path, Recorder(), write=write)
    drive.append([b"x"], filemark=False)  # the retry after the warning goes through
    assert drive.end_of_medium and drive.free_blocks == 0
    with pytest.raises(CartridgeFullError, match=r"physical end of the medium.*smaller --cartridge-capacity"):
        drive.append([b"y"], filemark=True)


def test_a_rewinding_device_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="use the non-rewinding /dev/nst0"):
        TapeOptions(barcodes=["BB0001L8"], drives=["/dev/st0"])
    with pytest.raises(ValueError, match="give one --cartridge BARCODE per --drive"):
        TapeOptions(barcodes=["BB0001L8", "BB0002L8"], drives=["/dev/nst0"])
    result = CliRunner().invoke(
        app,
        ["pool", "create", "--name", "t", "--kind", "tape", "--path", str(tmp_path), "--drive", "/dev/nst0"],
    )
    assert result.exit_code == 2 and "name the cartridge loaded in each drive" in result.output


def test_pool_create_with_drives_registers_them_without_touching_the_devices(tmp_path: Path) -> None:
    store = InMemoryRegistryStore()
    options = TapeOptions(
        barcodes=["BB0002L8", "BB0001L8"], drives=["/dev/nst1", "/dev/nst0"], capacity_bytes=1 << 30
    )
    create_registered_pool(
        store, User(name="root", role="admin"), name="lto", kind="tape", location=tmp_path, tape=options
    )
    registration = store.get_pool("lto")
    assert registration is not None
    pool = open_registered_pool(registration)
    assert isinstance(pool, TapePool)
    assert [(c.barcode, getattr(c, "device", None)) for c in pool.library.cartridges()] == [
        ("BB0001L8", "/dev/nst0"),
        ("BB0002L8", "/dev/nst1"),
    ]
    with pytest.raises(PoolError, match="cartridge BB0009L8 is in none of the drives"):
        pool.library.cartridge("BB0009L8")


class EmulatedTape:
    """The st driver's behaviour for one cartridge: records are blocks or filemarks (None)."""

    def __init__(self, early_warning: int) -> None:
        self.records: list[bytes | None] = []
        self.position = 0
        self.early_warning = early_warning
        self.warned = False

    def _blocks(self) -> int:
        return sum(1 for r in self.records if r is not None)

    def _forward_file(self) -> None:
        while True:
            if self.position >= len(self.records):
                raise OSError(errno.EIO, "Input/output error")
            self.position += 1
            if self.records[self.position - 1] is None:
                return

    def _back_file(self) -> None:
        while True:  # stops before (on the beginning-of-tape side of) the filemark
            if self.position == 0:
                raise OSError(errno.EIO, "Input/output error")
            self.position -= 1
            if self.records[self.position] is None:
                return

    def mtop(self, op: int, count: int) -> None:
        if op == MtOp.REW:
            self.position = 0
        elif op == MtOp.EOM:
            self.position = len(self.records)
        elif op == MtOp.FSF:
            for _ in range(count):
                self._forward_file()
        elif op == MtOp.BSF:
            for _ in range(count):
                self._back_file()
        elif op == MtOp.FSR:
            for _ in range(count):
                if self.position >= len(self.records) or self.records[self.position] is None:
                    raise OSError(errno.EIO, "Input/output error")
                self.position += 1
        elif op == MtOp.WEOF:
            del self.records[self.position :]
            self.records += [None] * count
            self.position += count
        elif op != MtOp.SETBLK:
            raise OSError(errno.EINVAL, "Invalid argument")

    def status(self) -> tuple[int, int]:
        before = self.records[: self.position]
        last_mark = max((i for i, r in enumerate(before) if r is None), default=-1)
        return before.count(None), self.position - last_mark - 1

    def write(self, data: bytes) -> int:
        assert len(data) == BLOCK, "a fixed-block drive takes whole blocks"
        if self._blocks() >= self.early_warning and not self.warned:
            self.warned = True
            raise OSError(errno.ENOSPC, "No space left on device")
        self.warned = False
        del self.records[self.position :]
        self.records.append(data)
        self.position += 1
        return len(data)

    def read(self, size: int) -> bytes:
        if self.position >= len(self.records):
            return b""
        record = self.records[self.position]
        self.position += 1
        return record or b""


class EmulatedDrives:
    """DriveIO over regular files: each opened device path has its own EmulatedTape."""

    def __init__(self, tapes: dict[str, EmulatedTape]) -> None:
        self.tapes = tapes

    def tape(self, fd: int) -> EmulatedTape:
        return self.tapes[os.readlink(f"/proc/self/fd/{fd}")]

    def ioctl(self, fd: int, request: int, arg: bytes) -> bytes:
        tape = self.tape(fd)
        if request == MTIOCTOP:
            tape.mtop(*MTOP.unpack(arg))
            return arg
        if request == MTIOCGET:
            return MTGET.pack(0, 0, 0, 0, 0, *tape.status())
        assert request == MTIOCPOS
        return MTPOS.pack(tape.position)

    def io(self) -> DriveIO:
        return DriveIO(
            ioctl=self.ioctl,
            read=lambda fd, size: self.tape(fd).read(size),
            write=lambda fd, data: self.tape(fd).write(data),
        )


def test_a_disk_spans_two_drives_at_the_early_warning_and_scan_rebuilds_it(tmp_path: Path) -> None:
    devices = {barcode: tmp_path / f"nst{n}" for n, barcode in enumerate(["BB0001L8", "BB0002L8"])}
    for device in devices.values():
        device.touch()
    # the first cartridge warns well before its declared capacity (64 blocks): the pool must
    # move on when the drive says so, not when its own count says so
    drives = EmulatedDrives(
        {str(devices["BB0001L8"]): EmulatedTape(20), str(devices["BB0002L8"]): EmulatedTape(1000)}
    )
    lib_settings = LibrarySettings(
        block_size=BLOCK, capacity_bytes=1 << 20, drives={b: str(d) for b, d in devices.items()}
    )
    library = TapeLibrary.create(tmp_path / "lib", lib_settings, list(devices), drive_io=drives.io())
    pool = create_tape_pool(tmp_path / "home", library, chunk_size=CHUNK, compression="none")
    small, big = tmp_path / "small.raw", tmp_path / "big.raw"
    small_sha, big_sha = image(small, 3), image(big, 8)
    backup(pool, small, "set-1", "vol-small")
    backup(pool, big, "set-1", "vol-big")

    reopened = open_tape_pool(tmp_path / "home", TapeLibrary(tmp_path / "lib", drives.io()))
    manifest = reopened.load_manifest("set-1", "vol-big")
    assert reopened.cartridges_of(manifest) == ["BB0001L8", "BB0002L8"]
    assert restored_sha(reopened, "set-1", "vol-big", tmp_path / "big.out") == big_sha
    assert restored_sha(reopened, "set-1", "vol-small", tmp_path / "small.out") == small_sha

    for info in list(reopened.store.list("manifests/")):
        reopened.store.delete(info.key)
    assert sorted(scan_library(reopened).disks) == [("set-1", "vol-big"), ("set-1", "vol-small")]
    assert reopened.load_manifest("set-1", "vol-big") == manifest
