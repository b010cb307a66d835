"""`bingobackup verify`: a flipped byte in a pack is found and named (VM, disk, offset, set) on
dedup, standard and object pools; a clean pool reports nothing; samples, re-verify windows and
the catalog's record of it all."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pytest
from support.s3 import new_bucket, s3_settings
from support.verify import CHUNK, Backups, chunk_at, flip_byte, flip_optical_byte, flip_tape_byte, random_data
from typer.testing import CliRunner

from bingobackup.cli.main import app
from bingobackup.lifecycle.verify import DiskToVerify, VerifyReport, verify_disks
from bingobackup.media.discs import OpticalSettings
from bingobackup.media.tapelib import LibrarySettings, TapeLibrary
from bingobackup.pools.open import create_pool, create_pool_in
from bingobackup.pools.opticalpool import create_optical_pool
from bingobackup.pools.tapepool import create_tape_pool
from bingobackup.storage.s3arrowfs import catalog_filesystem
from bingobackup.storage.s3store import S3BlobStore
from catalog import Catalog, CatalogWriter
from catalog.schema import VerificationRecord
from tasks.verify import VerifySelection, verify_pool

PASSPHRASE = "verify-test-passphrase"


def local_backups(tmp_path: Path, kind: Literal["dedup", "standard"] = "dedup") -> Backups:
    pool_dir = tmp_path / f"pool-{kind}"
    pool = create_pool(
        pool_dir, kind, chunk_size=CHUNK, encrypted=True, passphrase=PASSPHRASE, scrypt_n=2**10
    )
    return Backups(pool, (str(pool_dir), None), tmp_path / "sources")


def two_sets_sharing_chunks(backups: Backups) -> bytes:
    """set-1 and set-2 of VM web share their first two chunks; set-3 holds VM db alone."""
    web = random_data(3)
    backups.back_up("set-1", "web", web, day=0)
    backups.back_up("set-2", "web", web[: 2 * CHUNK] + random_data(1), day=1)
    backups.back_up("set-3", "db", random_data(2), job="db-nightly", day=2)
    return web


def verify(backups: Backups, **selection: object) -> VerifyReport:
    return verify_pool(backups.pool, backups.catalog_root, VerifySelection.model_validate(selection))


def damaged_places(report: VerifyReport) -> list[tuple[str, str, str, int | None, str]]:
    return sorted((d.vm_name, d.volume_id, d.set_id, d.offset, d.kind) for d in report.damage)


def test_a_flipped_byte_in_a_dedup_pack_is_named_in_every_set_sharing_it(tmp_path: Path) -> None:
    backups = local_backups(tmp_path)
    two_sets_sharing_chunks(backups)
    flip_byte(backups.pool, chunk_at(backups.manifests[("set-1", "vol-web-root")], CHUNK))

    result = CliRunner().invoke(
        app,
        ["verify", "--pool", str(tmp_path / "pool-dedup")],
        env={"BINGOBACKUP_POOL_PASSPHRASE": PASSPHRASE, "COLUMNS": "250"},
    )

    assert result.exit_code == 1, result.output
    damaged_rows = [line for line in result.output.splitlines() if "vol-web-root" in line]
    assert len(damaged_rows) == 2  # the chunk is read once, and named in both sets holding it
    for set_id, row in zip(("set-1", "set-2"), damaged_rows, strict=True):
        assert "web" in row and str(CHUNK) in row and set_id in row and "authentication failed" in row
    assert "2 damaged reference(s) in set(s) set-1, set-2" in result.output
    assert "restore the damaged disks from a backup set" in result.output
    assert "catalog rebuild" not in result.output  # the catalog is sound: nothing to rebuild
    with Catalog.open(str(tmp_path / "pool-dedup")) as cat:
        rows = cat.query(
            "SELECT set_id, status, damaged_chunks, chunks_checked FROM verifications ORDER BY set_id"
        )
    assert rows.values.tolist() == [
        ["set-1", "damaged", 1, 3],
        ["set-2", "damaged", 1, 3],
        ["set-3", "ok", 0, 2],
    ]


def test_a_flipped_byte_in_a_standard_pack_is_named(tmp_path: Path) -> None:
    backups = local_backups(tmp_path, "standard")
    two_sets_sharing_chunks(backups)
    flip_byte(backups.pool, chunk_at(backups.manifests[("set-2", "vol-web-root")], 2 * CHUNK))

    report = verify(backups)

    # A standard pool keeps every set's chunks apart: only set-2 lost that region.
    assert damaged_places(report) == [("web", "vol-web-root", "set-2", 2 * CHUNK, "chunk")]
    assert [(s.set_id, s.status, s.chunks_checked) for s in report.sets] == [
        ("set-1", "ok", 3),
        ("set-2", "damaged", 3),
        ("set-3", "ok", 2),
    ]


def test_a_flipped_byte_in_an_object_pool_is_named(moto_s3: str, tmp_path: Path) -> None:
    settings = s3_settings(moto_s3, new_bucket(moto_s3))
    pool = create_pool_in(S3BlobStore(settings, "object-1"), "dedup", chunk_size=CHUNK)
    backups = Backups(pool, (settings.catalog_root, catalog_filesystem(settings, "object-1")), tmp_path)
    backups.back_up("set-1", "web", random_data(2))
    flip_byte(pool, chunk_at(backups.manifests[("set-1", "vol-web-root")], 0))

    report = verify(backups)

    assert damaged_places(report) == [("web", "vol-web-root", "set-1", 0, "chunk")]
    assert "digest" in report.damage[0].reason  # unencrypted: the digest catches it


def test_a_clean_pool_reports_nothing_and_records_every_set(tmp_path: Path) -> None:
    backups = local_backups(tmp_path)
    two_sets_sharing_chunks(backups)

    report = verify(backups)

    assert report.ok and report.damage == []
    assert report.distinct_chunks == report.chunks_read == 6  # 3 + 1 new + 2
    result = CliRunner().invoke(
        app, ["sets", "list", "--pool", str(tmp_path / "pool-dedup")], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    today = f"{datetime.now(UTC):%Y-%m-%d}"
    assert sum(f"ok {today}" in line for line in result.output.splitlines()) == 3


def test_a_sample_reads_that_share_of_the_distinct_chunks_with_the_seed_reported(tmp_path: Path) -> None:
    backups = local_backups(tmp_path)
    backups.back_up("set-1", "web", random_data(40))

    report = verify(backups, sample_percent=10.0, seed=7)
    again = verify(backups, sample_percent=10.0, seed=7)

    assert report.chunks_read == math.ceil(40 * 0.10) == 4
    assert report.seed == 7 and "10 % sample (seed 7)" in report.headline()
    assert again.bytes_read == report.bytes_read  # the same chunks drawn
    with Catalog.open(str(tmp_path / "pool-dedup")) as cat:
        rows = cat.query("SELECT sampled_percent, sample_seed, chunks_checked FROM verifications")
    assert rows.values.tolist() == [[10.0, 7, 4], [10.0, 7, 4]]


def test_since_days_skips_sets_fully_verified_lately(tmp_path: Path) -> None:
    backups = local_backups(tmp_path)
    two_sets_sharing_chunks(backups)
    writer = CatalogWriter(*backups.catalog_root)
    now = datetime.now(UTC)
    # set-1 fully verified 3 days ago, set-2 10 days ago, set-3 only sampled yesterday.
    for set_id, days, percent in (("set-1", 3, 100.0), ("set-2", 10, 100.0), ("set-3", 1, 10.0)):
        writer.write_verifications(
            f"verify-{set_id}",
            [
                VerificationRecord(
                    run_id=f"verify-{set_id}",
                    set_id=set_id,
                    started_at=now - timedelta(days=days),
                    verified_at=now - timedelta(days=days),
                    status="ok",
                    sampled_percent=percent,
                )
            ],
        )

    report = verify(backups, since_days=7)

    assert report.skipped_sets == ["set-1"]
    assert [s.set_id for s in report.sets] == ["set-2", "set-3"]
    assert [s.set_id for s in verify(backups, since_days=7).sets] == []


def test_selection_by_set_vm_and_job(tmp_path: Path) -> None:
    backups = local_backups(tmp_path)
    two_sets_sharing_chunks(backups)
    flip_byte(backups.pool, chunk_at(backups.manifests[("set-1", "vol-web-root")], 0))

    by_set = verify(backups, set_id="set-2")
    assert [s.set_id for s in by_set.sets] == ["set-2"]
    # set-1 shares the damaged chunk: named too, as outside this run.
    assert [(d.set_id, d.verified) for d in by_set.damage] == [("set-2", True), ("set-1", False)]
    assert [s.set_id for s in verify(backups, vm="db").sets] == ["set-3"]
    assert [s.set_id for s in verify(backups, job="nightly").sets] == ["set-1", "set-2"]
    with pytest.raises(Exception, match="No committed backup set nope"):
        verify(backups, set_id="nope")


def test_a_flipped_byte_on_tape_is_named(tmp_path: Path) -> None:
    library = TapeLibrary.create(
        tmp_path / "lib",
        LibrarySettings(block_size=16 << 10, capacity_bytes=1 << 20),
        ["BB0001L8", "BB0002L8"],
    )
    pool = create_tape_pool(tmp_path / "home", library, chunk_size=CHUNK)
    backups = Backups(pool, (str(tmp_path / "home"), None), tmp_path / "sources")
    backups.back_up("set-1", "web", random_data(3))
    backups.back_up("set-2", "web", random_data(3), day=1)
    assert verify(backups).ok
    flip_tape_byte(pool, chunk_at(backups.manifests[("set-2", "vol-web-root")], 2 * CHUNK))

    report = verify(backups)

    assert damaged_places(report) == [("web", "vol-web-root", "set-2", 2 * CHUNK, "chunk")]


def test_a_flipped_byte_on_a_closed_disc_is_named(tmp_path: Path) -> None:
    settings = OpticalSettings.model_validate(
        {"disc_bytes": 1 << 20, "label_prefix": "OPT_", "output_dir": str(tmp_path / "burned")}
    )
    pool = create_optical_pool(tmp_path / "home", settings, chunk_size=CHUNK)
    backups = Backups(pool, (str(tmp_path / "home"), None), tmp_path / "sources")
    backups.back_up("set-1", "web", random_data(3))
    backups.back_up("set-2", "web", random_data(3), day=1)
    pool.close_disc()
    assert verify(backups).ok
    flip_optical_byte(pool, chunk_at(backups.manifests[("set-1", "vol-web-root")], CHUNK))

    report = verify(backups)

    assert damaged_places(report) == [("web", "vol-web-root", "set-1", CHUNK, "chunk")]


def test_a_damaged_manifest_and_a_catalog_that_disagrees_are_told_apart(tmp_path: Path) -> None:
    backups = local_backups(tmp_path)
    backups.back_up("set-1", "web", random_data(2))
    backups.back_up("set-2", "db", random_data(2), day=1)
    manifest_file = tmp_path / "pool-dedup" / "manifests" / "set-1" / "vol-web-root.json"
    manifest_file.write_bytes(manifest_file.read_bytes().replace(b'"offset":65536', b'"offset":65537'))
    db = backups.manifests[("set-2", "vol-db-root")]
    swapped = db.model_copy(
        update={
            "chunks": (
                db.chunks[0].model_copy(update={"offset": CHUNK}),
                db.chunks[1].model_copy(update={"offset": 0}),
            )
        }
    )
    disks = [
        DiskToVerify(
            set_id="set-1",
            volume_id="vol-web-root",
            vm_name="web",
            indexed=backups.manifests[("set-1", "vol-web-root")],
        ),
        DiskToVerify(set_id="set-2", volume_id="vol-db-root", vm_name="db", indexed=swapped),
    ]

    report = verify_disks(backups.pool, disks)

    assert [(d.set_id, d.kind, d.offset) for d in report.damage] == [
        ("set-1", "manifest", None),
        ("set-2", "catalog", 0),
    ]
    assert "fails its seal check" in report.damage[0].reason
    assert report.chunks_read == 4  # set-1's chunks still read, from the catalog's rows
    assert (
        "catalog rebuild --pool pool-dedup" in report.advice()
        and "restore the damaged disks" in report.advice()
    )
