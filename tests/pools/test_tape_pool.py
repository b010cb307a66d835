"""The tape pool over the emulated library: a disk spanning cartridges round-trips with
SHA-256 equality, restore positions by (cartridge, file, offset), `scan` rebuilds the
manifests from the cartridges alone, and the last cartridge full is PoolFullError."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.media import backup, image, library, restored_sha
from support.pools import CHUNK, FAST_SCRYPT_N, PASSPHRASE

from bingobackup.media.tapelib import TapeLibrary
from bingobackup.mover.errors import DiskReadError
from bingobackup.pools import PoolFullError
from bingobackup.pools.tapepool import create_tape_pool, open_tape_pool, scan_library


def test_a_disk_spans_cartridges_and_scan_rebuilds_the_catalog(tmp_path: Path) -> None:
    lib = library(tmp_path / "lib", 3)
    pool = create_tape_pool(
        tmp_path / "home",
        lib,
        chunk_size=CHUNK,
        encrypted=True,
        passphrase=PASSPHRASE,
        scrypt_n=FAST_SCRYPT_N,
    )
    small, big = tmp_path / "small.raw", tmp_path / "big.raw"
    small_sha, big_sha = image(small, 4), image(big, 20)  # 20 random chunks: more than one cartridge
    backup(pool, small, "set-1", "vol-small")
    backup(pool, big, "set-1", "vol-big")

    reopened = open_tape_pool(tmp_path / "home", TapeLibrary(tmp_path / "lib"), PASSPHRASE)
    manifest = reopened.load_manifest("set-1", "vol-big")
    assert reopened.cartridges_of(manifest) == ["BB0001L8", "BB0002L8"]
    assert reopened.cartridges_of(reopened.load_manifest("set-1", "vol-small")) == ["BB0001L8"]
    second_file = [r for r in manifest.chunks if r.location.startswith("tape:BB0001L8:1:")]
    assert second_file, "the big disk starts as the second file of the first cartridge"
    assert restored_sha(reopened, "set-1", "vol-big", tmp_path / "big.out") == big_sha
    assert restored_sha(reopened, "set-1", "vol-small", tmp_path / "small.out") == small_sha

    for info in list(reopened.store.list("manifests/")):  # the catalog is lost ...
        reopened.store.delete(info.key)
    assert sorted(scan_library(reopened).disks) == [("set-1", "vol-big"), ("set-1", "vol-small")]
    assert reopened.load_manifest("set-1", "vol-big") == manifest  # ... and rebuilt from tape


def test_last_cartridge_full_stops_the_disk_and_keeps_earlier_backups(tmp_path: Path) -> None:
    pool = create_tape_pool(
        tmp_path / "home", library(tmp_path / "lib", 1), chunk_size=CHUNK, compression="none"
    )
    small, big = tmp_path / "small.raw", tmp_path / "big.raw"
    small_sha = image(small, 4)
    image(big, 20)
    backup(pool, small, "set-1", "vol-small")
    with pytest.raises(DiskReadError) as caught:  # the mover names the disk and the offset
        backup(pool, big, "set-2", "vol-big")
    assert isinstance(caught.value.__cause__, PoolFullError)
    message = str(caught.value)
    assert "pool home is full (no cartridge after cartridge BB0001L8 has room" in message
    assert message.endswith("load or add cartridges to the library and run the backup again")
    assert "grow the filesystem" not in message  # the tape advice only, not the generic one
    assert list(pool.list_manifests()) == [("set-1", "vol-small")]
    assert restored_sha(pool, "set-1", "vol-small", tmp_path / "small.out") == small_sha
    assert sorted(scan_library(pool).disks) == [("set-1", "vol-small")]  # the cut-off stream has no trailer
