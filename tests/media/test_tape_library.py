"""The emulated tape library positions like a drive: an index of the filemarks is learnt once
per cartridge, so reading block B of file N reads only the blocks asked for (counted through
an instrumented cartridge, not timed), `files` and `free_blocks` read no header, and records
appended through another library object are learnt incrementally. A torn record left by a
crash is cut off by the next append, and a full host filesystem is PoolFullError with the
file being written cut off whole."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

import pytest
from support.media import backup, image, library, restored_sha
from support.pools import CHUNK, fill_host_disk_at_third_write

from bingobackup.media import tapelib
from bingobackup.media.tapelib import Cartridge, LibrarySettings, TapeLibrary
from bingobackup.mover.errors import DiskReadError
from bingobackup.pools.tapepool import create_tape_pool, scan_library
from bingobackup.storage.errors import PoolError, PoolFullError

BLOCK = 4 << 10
FILES = 300


class CountingCartridge(Cartridge):
    """Counts every record header read: what positioning costs on the emulated tape."""

    header_reads = 0

    def _read_header(self, tape: BinaryIO, position: int) -> tuple[bytes, int]:
        self.header_reads += 1
        return super()._read_header(tape, position)


def payload(file_number: int, block: int) -> bytes:
    """Distinct bytes for every block (a wrong position reads different bytes)."""
    seed = hashlib.sha256(f"{file_number}:{block}".encode()).digest()
    return (seed * (BLOCK // len(seed)))[:BLOCK]


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, LibrarySettings]:
    """A cartridge of FILES tape files of 3 blocks each (900 blocks, 300 filemarks)."""
    settings = LibrarySettings(block_size=BLOCK, capacity_bytes=64 << 20)
    library = TapeLibrary.create(tmp_path / "lib", settings, ["BB0001L8"])
    cartridge = library.cartridge("BB0001L8")
    for n in range(FILES):
        cartridge.append([payload(n, b) for b in range(3)], filemark=True)
    return tmp_path / "lib" / "cartridges" / "BB0001L8.tape", settings


def test_a_read_positions_without_reading_the_records_before_it(
    written: tuple[Path, LibrarySettings],
) -> None:
    path, settings = written
    cartridge = CountingCartridge(path, settings)
    assert cartridge.files == FILES  # loading learns the index: every header once
    assert cartridge.header_reads == FILES * 4
    cartridge.header_reads = 0

    last = FILES - 1
    # 100 bytes straddling blocks 1 and 2 of the last file: two headers, whatever precedes it
    assert cartridge.read(last, 2 * BLOCK - 50, 100) == payload(last, 1)[-50:] + payload(last, 2)[:50]
    assert cartridge.header_reads == 2
    assert cartridge.read(7, BLOCK, BLOCK) == payload(7, 1)
    assert cartridge.header_reads == 3
    assert cartridge.read_file(150) == b"".join(payload(150, b) for b in range(3))
    assert cartridge.header_reads == 6
    assert (cartridge.files, cartridge.blocks_used, cartridge.free_blocks) == (FILES, 900, 16384 - 900)
    assert cartridge.header_reads == 6  # counting needs no header

    with pytest.raises(PoolError, match=r"cartridge BB0001L8 file 5 ends before byte 12389"):
        cartridge.read(5, 3 * BLOCK, 101)


def test_records_appended_elsewhere_are_learnt_incrementally(written: tuple[Path, LibrarySettings]) -> None:
    path, settings = written
    reader = CountingCartridge(path, settings)
    assert reader.files == FILES
    reader.header_reads = 0
    other = Cartridge(path, settings)  # another library object (another process) appends
    other.append([payload(FILES, 0), b"tail"], filemark=True)

    assert reader.files == FILES + 1
    assert reader.header_reads == 3  # only the new records: two blocks and a filemark
    assert reader.read(FILES, BLOCK, 4) == b"tail"


def test_a_torn_record_is_cut_off_by_the_next_append(written: tuple[Path, LibrarySettings]) -> None:
    path, settings = written
    whole = path.stat().st_size
    with path.open("ab") as tape:  # a crash in the middle of a block
        tape.write(b"B" + (BLOCK).to_bytes(4, "big") + b"half a block")
    cartridge = Cartridge(path, settings)
    assert cartridge.files == FILES  # the torn record is not part of the cartridge
    cartridge.append([b"after the crash"], filemark=True)

    assert path.stat().st_size == whole + 5 + BLOCK + 5
    assert cartridge.read_file(FILES) == b"after the crash"
    assert Cartridge(path, settings).read(FILES - 1, 0, BLOCK) == payload(FILES - 1, 0)


def test_a_full_host_disk_cuts_the_file_back_and_keeps_earlier_backups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = create_tape_pool(
        tmp_path / "home", library(tmp_path / "lib", 2), chunk_size=CHUNK, compression="none"
    )
    small, big = tmp_path / "small.raw", tmp_path / "big.raw"
    small_sha, big_sha = image(small, 4), image(big, 6)
    backup(pool, small, "set-1", "vol-small")
    tape = tmp_path / "lib" / "cartridges" / "BB0001L8.tape"
    clean = tape.stat().st_size

    fill_host_disk_at_third_write(
        monkeypatch, tapelib
    )  # two appends of the new stream are on tape; the third is torn
    with pytest.raises(DiskReadError) as caught:
        backup(pool, big, "set-2", "vol-big")
    assert isinstance(caught.value.__cause__, PoolFullError)
    message = str(caught.value)
    assert (
        f"pool home is full (the filesystem holding cartridge BB0001L8 ({tape.parent}) has no space"
        in message
    )
    assert "free space on that filesystem (or move the library to a larger one)" in message
    assert tape.stat().st_size == clean  # the cut-off file is gone whole: no torn record, no stray blocks

    monkeypatch.undo()  # space is freed: the next file starts on a clean boundary
    backup(pool, big, "set-3", "vol-big")
    assert sorted(scan_library(pool).disks) == [("set-1", "vol-small"), ("set-3", "vol-big")]
    assert restored_sha(pool, "set-1", "vol-small", tmp_path / "small.out") == small_sha
    assert restored_sha(pool, "set-3", "vol-big", tmp_path / "big.out") == big_sha
