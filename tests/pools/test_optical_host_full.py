"""A full host filesystem under an optical pool's staging area (the open disc's files) is
PoolFullError naming the pool and what to do; the stream file is cut back to its last whole
record, so the disc's earlier files and a later backup stay readable."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from support.media import backup, image, restored_sha, settings
from support.pools import CHUNK, fill_host_disk_at_third_write

from bingobackup.format.constants import STREAM_TAG as TAG
from bingobackup.media import discs
from bingobackup.media.discs import STAGING
from bingobackup.mover.errors import DiskReadError
from bingobackup.pools import PoolFullError, opticalpool
from bingobackup.pools.opticalpool import create_optical_pool, scan_discs
from bingobackup.pools.stream import parse_stream


def whole_records(path: Path) -> bool:
    """Whether the file is a sequence of complete stream records and nothing else."""
    data = path.read_bytes()
    return sum(TAG.size + len(payload) for _, _, payload in parse_stream(data)) == len(data)


def test_a_full_staging_disk_cuts_back_to_the_last_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = create_optical_pool(tmp_path / "home", settings(tmp_path), chunk_size=CHUNK, compression="none")
    small, big = tmp_path / "small.raw", tmp_path / "big.raw"
    small_sha, big_sha = image(small, 4), image(big, 6)
    backup(pool, small, "set-1", "vol-small")

    fill_host_disk_at_third_write(
        monkeypatch, opticalpool
    )  # the header and a chunk record are on disk; the next is torn
    with pytest.raises(DiskReadError) as caught:
        backup(pool, big, "set-2", "vol-big")
    assert isinstance(caught.value.__cause__, PoolFullError)
    message = str(caught.value)
    staging = tmp_path / "home" / STAGING
    assert (
        f"pool home is full (the filesystem holding the open disc's files ({staging}) has no space" in message
    )
    assert "free space on that filesystem and run the backup again" in message
    cut = staging / "OPT_1_0001" / "F0002.BIN"
    assert whole_records(cut) and cut.stat().st_size > 0  # no torn record at its end

    monkeypatch.undo()  # space is freed
    backup(pool, big, "set-3", "vol-big")
    assert pool.close_disc() is not None
    assert sorted(scan_discs(pool).disks) == [("set-1", "vol-small"), ("set-3", "vol-big")]
    assert restored_sha(pool, "set-1", "vol-small", tmp_path / "small.out") == small_sha
    assert restored_sha(pool, "set-3", "vol-big", tmp_path / "big.out") == big_sha


def test_a_catalog_copy_that_does_not_fit_on_the_host_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = create_optical_pool(tmp_path / "home", settings(tmp_path), chunk_size=CHUNK)
    image(tmp_path / "disk.raw", 3)
    backup(pool, tmp_path / "disk.raw", "set-1", "vol-a")

    def no_space(fd: int, data: bytes, offset: int) -> None:
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    monkeypatch.setattr(discs, "write_fully", no_space)
    with pytest.raises(PoolFullError, match=r"pool home is full \(the filesystem holding the open disc"):
        pool.keep_catalog_copy("set-1", b'{"rows": "of set-1"}')
    assert [p.name for p in pool.discs.staged_files("OPT_1_0001")] == ["F0001.BIN"]
