"""The optical pool: a disk spanning discs round-trips with SHA-256 equality from a directory of
ISO images, a missing image is named, `scan` rebuilds the manifests from the images alone, the
burner command gets every closed image, and running out of discs is PoolFullError."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pycdlib
import pytest
from support.media import DISC, backup, image, restored_sha, settings
from support.pools import CHUNK, FAST_SCRYPT_N, PASSPHRASE

from bingobackup.media.discs import parse_disc_size
from bingobackup.mover.errors import DiskReadError
from bingobackup.pools import PoolError, PoolFullError
from bingobackup.pools.opticalpool import create_optical_pool, open_optical_pool, scan_discs


def volume_id(iso_path: Path) -> str:
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:
        return iso.pvd.volume_identifier.decode().strip()
    finally:
        iso.close()


def test_a_disk_spans_discs_and_restores_from_a_directory_of_images(tmp_path: Path) -> None:
    pool = create_optical_pool(
        tmp_path / "home",
        settings(tmp_path),
        chunk_size=CHUNK,
        encrypted=True,
        passphrase=PASSPHRASE,
        scrypt_n=FAST_SCRYPT_N,
    )
    small, big = tmp_path / "small.raw", tmp_path / "big.raw"
    small_sha, big_sha = image(small, 4), image(big, 20)  # 20 random chunks: more than one disc
    backup(pool, small, "set-1", "vol-small")
    backup(pool, big, "set-1", "vol-big")
    assert pool.close_disc() is not None  # the end of the backup window: burn the last disc

    images = sorted((tmp_path / "out").glob("*.iso"))
    assert [p.name for p in images] == ["OPT_1_0001.iso", "OPT_1_0002.iso"]
    assert all(p.stat().st_size <= DISC for p in images)  # each fits its disc
    assert [volume_id(p) for p in images] == ["OPT_1_0001", "OPT_1_0002"]
    assert [d.label for d in pool.discs.closed()] == ["OPT_1_0001", "OPT_1_0002"]
    assert {(f.set_id, f.volume_id) for f in pool.discs.closed()[1].files} == {("set-1", "vol-big")}

    # The discs are read back into another directory; the output directory is gone.
    shutil.move(tmp_path / "out", tmp_path / "read-back")
    reopened = open_optical_pool(tmp_path / "home", PASSPHRASE, image_dirs=[tmp_path / "read-back"])
    manifest = reopened.load_manifest("set-1", "vol-big")
    assert reopened.discs_of(manifest) == ["OPT_1_0001", "OPT_1_0002"]
    assert reopened.discs_of(reopened.load_manifest("set-1", "vol-small")) == ["OPT_1_0001"]
    reopened.require_discs(manifest)
    assert restored_sha(reopened, "set-1", "vol-big", tmp_path / "big.out") == big_sha
    assert restored_sha(reopened, "set-1", "vol-small", tmp_path / "small.out") == small_sha

    for info in list(reopened.store.list("manifests/")):  # the catalog is lost ...
        reopened.store.delete(info.key)
    assert sorted(scan_discs(reopened).disks) == [("set-1", "vol-big"), ("set-1", "vol-small")]
    assert reopened.load_manifest("set-1", "vol-big") == manifest  # ... and rebuilt from the images

    (tmp_path / "read-back" / "OPT_1_0002.iso").unlink()
    without = open_optical_pool(tmp_path / "home", PASSPHRASE, image_dirs=[tmp_path / "read-back"])
    with pytest.raises(PoolError) as missing:
        without.require_discs(manifest)
    assert "disc(s) OPT_1_0002 are needed" in str(missing.value) and "OPT_1_0002.iso" in str(missing.value)
    assert str(tmp_path / "read-back") in str(missing.value)


def test_open_disc_reads_before_it_is_burned_and_burner_gets_each_image(tmp_path: Path) -> None:
    burned = tmp_path / "burned"
    burned.mkdir()
    burner = tmp_path / "burn.py"
    burner.write_text(f"import shutil, sys\nshutil.copy(sys.argv[1], {str(burned)!r})\n")
    pool = create_optical_pool(
        tmp_path / "home",
        settings(tmp_path, burn_command=f"{sys.executable} {burner}"),
        chunk_size=CHUNK,
        compression="none",
    )
    source = tmp_path / "disk.raw"
    sha = image(source, 4)
    backup(pool, source, "set-1", "vol-a")
    assert list((tmp_path / "out").glob("*.iso")) == []  # the disc is still open ...
    assert restored_sha(pool, "set-1", "vol-a", tmp_path / "a.out") == sha  # ... and readable

    record = pool.close_disc()
    assert record is not None and record.label == "OPT_1_0001"
    written = tmp_path / "out" / "OPT_1_0001.iso"
    assert (burned / written.name).read_bytes() == written.read_bytes()
    assert pool.close_disc() is None  # nothing open: nothing to burn
    assert restored_sha(pool, "set-1", "vol-a", tmp_path / "b.out") == sha  # now from the image


def test_failing_burner_keeps_the_image_and_says_so(tmp_path: Path) -> None:
    pool = create_optical_pool(
        tmp_path / "home", settings(tmp_path, burn_command="false"), chunk_size=CHUNK, compression="none"
    )
    source = tmp_path / "disk.raw"
    image(source, 3)
    backup(pool, source, "set-1", "vol-a")
    with pytest.raises(
        PoolError, match=r"burner command for OPT_1_0001\.iso exited with 1.*the image is kept"
    ):
        pool.close_disc()
    assert (tmp_path / "out" / "OPT_1_0001.iso").is_file()


def test_last_disc_full_stops_the_disk_and_keeps_earlier_backups(tmp_path: Path) -> None:
    pool = create_optical_pool(
        tmp_path / "home", settings(tmp_path, max_discs=1), chunk_size=CHUNK, compression="none"
    )
    small, big = tmp_path / "small.raw", tmp_path / "big.raw"
    small_sha = image(small, 4)
    image(big, 20)
    backup(pool, small, "set-1", "vol-small")
    with pytest.raises(DiskReadError) as caught:
        backup(pool, big, "set-2", "vol-big")
    assert isinstance(caught.value.__cause__, PoolFullError)
    message = str(caught.value)
    assert "pool home is full (no blank disc left after disc OPT_1_0001" in message
    assert "raise the pool's max discs" in message and "grow the filesystem" not in message
    assert list(pool.list_manifests()) == [("set-1", "vol-small")]
    assert restored_sha(pool, "set-1", "vol-small", tmp_path / "small.out") == small_sha
    assert sorted(scan_discs(pool).disks) == [("set-1", "vol-small")]  # the cut-off stream has no trailer


def test_disc_sizes_and_a_closed_disc_is_never_rewritten(tmp_path: Path) -> None:
    assert parse_disc_size("dvd") == 4_700_000_000 and parse_disc_size("BD25") == 25_025_314_816
    assert parse_disc_size(str(8 << 20)) == 8 << 20
    with pytest.raises(ValueError, match="use dvd, bd25, bd50, bd100 or a byte count"):
        parse_disc_size("floppy")
    pool = create_optical_pool(tmp_path / "home", settings(tmp_path), chunk_size=CHUNK)
    source = tmp_path / "disk.raw"
    image(source, 3)
    backup(pool, source, "set-1", "vol-a")
    (tmp_path / "out" / "OPT_1_0001.iso").write_bytes(b"someone else's disc")
    with pytest.raises(PoolError, match="already exists and a closed disc is never rewritten"):
        pool.close_disc()
    assert (tmp_path / "out" / "OPT_1_0001.iso").read_bytes() == b"someone else's disc"
