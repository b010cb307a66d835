"""A cartridge in a real Linux tape drive (`/dev/nstN`), behind the interface of an emulated one.

UNTESTED ON REAL HARDWARE HERE: the tests drive this class through a recorder and an in-test
emulation of the st driver's ioctl semantics, never a real drive.

The drive is opened non-rewinding and put in fixed-block mode (MTSETBLK) so the catalog's byte
offsets map to blocks. Appends go to end of data (MTEOM); a filemark (MTWEOF) ends a tape file.
A read positions with MTFSF / MTBSF / MTFSR from the position MTIOCGET reports (MTREW when it is
unknown), so a restore of one disk spaces to its file instead of reading the cartridge. The
used extent is learnt once at end of data: files from MTIOCGET, blocks from MTIOCPOS (SCSI
logical block address, which counts filemarks too). End of medium follows the st driver: the
first write past the early warning fails with ENOSPC and the retry goes through, so the block
is kept, `end_of_medium` is set and the pool continues on its next cartridge; ENOSPC on the retry
is the physical end (CartridgeFullError). A drive has no barcode reader: the barcode is the one
the operator gave; media changers are out of scope.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from bingobackup.media.tape import CartridgeFullError, LibrarySettings
from bingobackup.storage.errors import PoolError

# <asm-generic/ioctl.h>: _IOC(dir, type, nr, size) packs nr (8 bits), type (8 bits), size
# (14 bits) and direction (2 bits) from the low end. This is the generic layout (x86, arm,
# riscv); alpha, mips, powerpc and sparc use other widths and are not supported.
_IOC_NRBITS, _IOC_TYPEBITS, _IOC_SIZEBITS = 8, 8, 14
_IOC_TYPESHIFT = _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS
_IOC_WRITE, _IOC_READ = 1, 2


def _ioc(direction: int, kind: str, number: int, size: int) -> int:
    return (direction << _IOC_DIRSHIFT) | (size << _IOC_SIZESHIFT) | (ord(kind) << _IOC_TYPESHIFT) | number


# <linux/mtio.h>, native layout and alignment ("@"): struct mtop {short mt_op; int mt_count;},
# struct mtget {long mt_type, mt_resid, mt_dsreg, mt_gstat, mt_erreg; __kernel_daddr_t (int)
# mt_fileno, mt_blkno;}, struct mtpos {long mt_blkno;}.
MTOP = struct.Struct("@hi")
MTGET = struct.Struct("@5l2i")
MTPOS = struct.Struct("@l")
MTIOCTOP = _ioc(_IOC_WRITE, "m", 1, MTOP.size)  # _IOW('m', 1, struct mtop)
MTIOCGET = _ioc(_IOC_READ, "m", 2, MTGET.size)  # _IOR('m', 2, struct mtget)
MTIOCPOS = _ioc(_IOC_READ, "m", 3, MTPOS.size)  # _IOR('m', 3, struct mtpos)


class MtOp(IntEnum):
    """The mt_op codes of <linux/mtio.h> this module uses."""

    FSF = 1  # forward space over filemarks: first block of the next file
    BSF = 2  # backward space filemarks: before the filemark
    FSR = 3  # forward space records (blocks)
    WEOF = 5  # write filemarks
    REW = 6  # rewind
    EOM = 12  # to end of recorded data, ready to append
    SETBLK = 20  # fixed block size (SCSI)


Ioctl = Callable[[int, int, bytes], bytes]


@dataclass(frozen=True)
class DriveIO:
    """Every system call on the device. Tests replace `ioctl` with a recorder, or all three with
    an emulated drive; ioctl(fd, request, packed struct) returns the struct as the kernel left it."""

    ioctl: Ioctl = fcntl.ioctl
    read: Callable[[int, int], bytes] = os.read
    write: Callable[[int, bytes], int] = os.write


class TapeDrive:
    """The cartridge loaded in one drive; the same interface as tapelib.Cartridge.

    Thread-safe: restore channels read concurrently and each read positions the one drive."""

    end_of_medium = False

    def __init__(
        self, device: str, barcode: str, settings: LibrarySettings, io: DriveIO | None = None
    ) -> None:
        self.device = device
        self.barcode = barcode
        self.block_size = settings.block_size
        self.capacity_blocks = settings.capacity_bytes // settings.block_size
        self._io = io or DriveIO()
        self._lock = threading.RLock()
        self._fd: int | None = None
        self._extent: list[int] | None = None  # [files, blocks], learnt at end of data
        self._at_end = False

    def __repr__(self) -> str:
        return f"TapeDrive({self.device!r}, barcode={self.barcode!r})"

    # -- the device ------------------------------------------------------------------------
    def _open(self) -> int:
        if self._fd is None:
            try:
                try:
                    self._fd = os.open(self.device, os.O_RDWR)
                except OSError as exc:
                    if exc.errno not in (errno.EACCES, errno.EROFS):
                        raise
                    self._fd = os.open(self.device, os.O_RDONLY)  # write-protected: reads still work
            except OSError as exc:
                raise PoolError(
                    f"cannot open tape drive {self.device} (cartridge {self.barcode}): {exc.strerror}; "
                    "check the device exists, a cartridge is loaded and this user may use it (tape group)"
                ) from None
            self.op(MtOp.SETBLK, self.block_size)  # the catalog's offsets assume fixed blocks
        return self._fd

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
                self._at_end = False

    def op(self, op: MtOp, count: int = 1) -> None:
        """One MTIOCTOP (e.g. `op(MtOp.WEOF, 1)` is `mt weof 1`)."""
        fd = self._open()
        try:
            self._io.ioctl(fd, MTIOCTOP, MTOP.pack(op, count))
        except OSError as exc:
            raise PoolError(
                f"tape drive {self.device} (cartridge {self.barcode}) refused {op.name} {count}: "
                f"{exc.strerror}; check the drive with `mt -f {self.device} status`"
            ) from None

    def _status(self) -> tuple[int, int]:
        """(file number, block in file) from MTIOCGET; -1 where the driver does not know."""
        *_, fileno, blkno = MTGET.unpack(self._io.ioctl(self._open(), MTIOCGET, bytes(MTGET.size)))
        return fileno, blkno

    def _logical_block(self) -> int:
        (blkno,) = MTPOS.unpack(self._io.ioctl(self._open(), MTIOCPOS, bytes(MTPOS.size)))
        return int(blkno)

    # -- the extent ------------------------------------------------------------------------
    def _learn_extent(self) -> list[int]:
        if self._extent is None:
            self.op(MtOp.EOM)
            self._at_end = True
            files = self._status()[0]
            self._extent = [files, self._logical_block() - files]
        return self._extent

    @property
    def files(self) -> int:
        with self._lock:
            return self._learn_extent()[0]

    @property
    def blocks_used(self) -> int:
        with self._lock:
            return self._learn_extent()[1]

    @property
    def free_blocks(self) -> int:
        if self.end_of_medium:
            return 0
        return max(0, self.capacity_blocks - self.blocks_used)

    # -- writing ---------------------------------------------------------------------------
    def append(self, payloads: list[bytes], filemark: bool) -> None:
        """Appends whole blocks (each payload zero-padded to block_size) at end of data, then
        optionally a filemark, which also flushes the drive's buffer."""
        with self._lock:
            # past the early warning the drive still takes the end of the file (the pool's last
            # partial block and filemark): that room is what the warning is for
            if not self.end_of_medium and len(payloads) > self.free_blocks:
                raise CartridgeFullError(f"cartridge {self.barcode} has {self.free_blocks} blocks free")
            extent = self._learn_extent()
            if not self._at_end:
                self.op(MtOp.EOM)
                self._at_end = True
            for payload in payloads:
                self._write_block(payload.ljust(self.block_size, b"\0"))
                extent[1] += 1
            if filemark:
                self.op(MtOp.WEOF, 1)
                extent[0] += 1

    def _write_block(self, block: bytes) -> None:
        fd = self._open()
        for _attempt in (1, 2):
            try:
                written = self._io.write(fd, block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise PoolError(
                        f"writing to tape drive {self.device} (cartridge {self.barcode}) failed: "
                        f"{exc.strerror}; check the drive and the cartridge, then run the backup again"
                    ) from None
                written = 0
            if written == len(block):
                return
            if written:
                raise PoolError(f"tape drive {self.device} wrote {written} of {len(block)} bytes of a block")
            # ENOSPC: the st driver lets the write after the early warning through
            self.end_of_medium = True
        raise CartridgeFullError(
            f"cartridge {self.barcode} in {self.device} reached the physical end of the medium before "
            f"its declared capacity; register the pool with a smaller --cartridge-capacity"
        )

    # -- reading ---------------------------------------------------------------------------
    def _locate(self, file_number: int, block: int) -> None:
        """Positions at `block` of tape file `file_number`, spacing from where the drive is."""
        self._at_end = False
        current, in_file = self._status()
        if current == file_number and 0 <= in_file <= block:
            if block > in_file:
                self.op(MtOp.FSR, block - in_file)
            return
        if current < 0 or file_number == 0:
            self.op(MtOp.REW)
            if file_number:
                self.op(MtOp.FSF, file_number)
        elif current < file_number:
            self.op(MtOp.FSF, file_number - current)
        else:  # back over the filemark that ends file_number - 1, then forward past it
            self.op(MtOp.BSF, current - file_number + 1)
            self.op(MtOp.FSF, 1)
        if block:
            self.op(MtOp.FSR, block)

    def _read_blocks(self, wanted: int | None) -> bytes:
        """Blocks from here until `wanted` bytes are read or the filemark (a 0-byte read)."""
        out = bytearray()
        fd = self._open()
        while wanted is None or len(out) < wanted:
            try:
                data = self._io.read(fd, self.block_size)
            except OSError as exc:
                raise PoolError(
                    f"reading tape drive {self.device} (cartridge {self.barcode}) failed: {exc.strerror}"
                ) from None
            if not data:
                break
            out += data
        return bytes(out)

    def read(self, file_number: int, start: int, length: int) -> bytes:
        """`length` bytes of tape file `file_number` from byte `start` (positions first)."""
        first, skip = divmod(start, self.block_size)
        with self._lock:
            self._locate(file_number, first)
            data = self._read_blocks(skip + length)[skip : skip + length]
        if len(data) != length:
            raise PoolError(
                f"cartridge {self.barcode} file {file_number} ends before byte {start + length}; the "
                f"cartridge in {self.device} is damaged or not the one the catalog names"
            )
        return data

    def read_file(self, file_number: int) -> bytes:
        """A whole tape file (for `pool scan`); its last block keeps the zero padding."""
        with self._lock:
            self._locate(file_number, 0)
            return self._read_blocks(None)

    def read_head(self, file_number: int, length: int) -> bytes:
        """Up to `length` bytes from the start of a tape file (its header and pool config)."""
        with self._lock:
            self._locate(file_number, 0)
            return self._read_blocks(length)[:length]
