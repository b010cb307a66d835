"""Prune and set deletion on real pools: kept sets still restore byte for byte, deleted ones
are gone from the pool and from every view, locked sets are refused saying until when, and
tape media are released only once every set on them is expired."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.lifecycle import CHUNK, Calendar
from support.s3 import new_bucket, s3_settings

from bingobackup.lifecycle.deletion import released_media
from bingobackup.media.discs import OpticalSettings
from bingobackup.media.tapelib import LibrarySettings, TapeLibrary
from bingobackup.pools.open import create_pool, create_pool_in
from bingobackup.pools.opticalpool import create_optical_pool
from bingobackup.pools.tapepool import create_tape_pool
from bingobackup.specs.retention import RetentionPolicy
from bingobackup.storage.s3store import S3BlobStore
from catalog import Catalog, CatalogNotFoundError, CatalogWriter
from catalog.lifecycle import (
    JobRetention,
    delete_sets,
    expired_sets,
    plan_prune,
    retention_lookup,
    sets_to_delete,
)

DAY0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
NOW = DAY0 + timedelta(days=30)


def calendar(tmp_path: Path, kind: str, request: pytest.FixtureRequest | None = None) -> Calendar:
    """A pool of `kind` (`object`: a dedup pool in a bucket of moto's S3 server) whose catalog
    is in tmp_path/pool."""
    if kind == "object":
        assert request is not None
        endpoint = request.getfixturevalue("moto_s3")
        store = S3BlobStore(s3_settings(endpoint, new_bucket(endpoint)), "p")
        pool = create_pool_in(store, "dedup", chunk_size=CHUNK)
    else:
        pool = create_pool(tmp_path / "pool", kind, name="p", chunk_size=CHUNK)  # type: ignore[arg-type]
    (tmp_path / "work").mkdir()
    return Calendar(pool, CatalogWriter(str(tmp_path / "pool")), tmp_path / "work")


def keep_last(count: int) -> JobRetention:
    return JobRetention(RetentionPolicy(keep_last=count, keep_failed_days=0))


@pytest.mark.parametrize("kind", ["dedup", "standard", "object"])
def test_prune_removes_what_the_policy_lets_go_and_the_kept_sets_restore(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    cal = calendar(tmp_path, kind, request)
    for day in range(6):
        vms = {"web": "ok", "db": "failed" if day == 5 else "ok"}
        cal.back_up(f"set-{day}", DAY0 + timedelta(days=day), vms)
    catalog = Catalog.open(str(tmp_path / "pool"), "p")

    plan = plan_prune(catalog, "p", retention_lookup({"nightly": keep_last(2)}, None), NOW)

    # web keeps sets 5 and 4; db failed in set 5, so its last two good ones are 4 and 3, and
    # its failed backup in set 5 is past keep_failed_days=0 (set 5 stays for web).
    assert {s for s, p in plan.sets.items() if p.keep} == {"set-5", "set-4", "set-3"}
    assert plan.to_remove == ["set-0", "set-1", "set-2"]
    db = next(v for v in plan.vms if v.vm_name == "db")
    assert [(v.set_id, v.keep, v.reasons) for v in db.verdicts[:2]] == [
        ("set-5", False, ("failed, older than 0 days",)),
        ("set-4", True, ("last",)),
    ]

    report = delete_sets(
        cal.pool,
        cal.writer,
        [plan.records[s] for s in plan.to_remove],
        now=NOW,
        reason="retention",
        deleted_by="admin",
        rule="keep_last=2",
    )
    assert report.deleted == ["set-0", "set-1", "set-2"] and not report.refused
    assert report.frees_by_gc == (kind != "standard")

    catalog.refresh()
    assert list(catalog.list_sets()["set_id"]) == ["set-5", "set-4", "set-3"]
    for view in ("vm_backups", "disk_backups", "chunks"):
        shown = set(catalog.query(f"SELECT DISTINCT set_id FROM {view}")["set_id"])
        assert shown <= {"set-5", "set-4", "set-3"}, view
    with pytest.raises(CatalogNotFoundError, match="No committed backup set set-1"):
        catalog.vm_backup("set-1", "web")
    tombstones = catalog.query(
        "SELECT set_id, reason, rule, deleted_by, data_removed FROM set_deletions ORDER BY set_id"
    )
    assert tombstones.values.tolist() == [
        [f"set-{n}", "retention", "keep_last=2", "admin", True] for n in range(3)
    ]
    assert {s for s, _ in cal.pool.list_manifests()} == {"set-5", "set-4", "set-3"}
    if kind == "standard":
        assert {info.key.split("/")[1] for info in cal.pool.store.list("packs/")} == {
            "set-5",
            "set-4",
            "set-3",
        }
    for set_id in ("set-5", "set-4", "set-3"):
        for vm, sha in cal.disks[set_id].items():
            assert cal.restored_sha256(set_id, vm) == sha

    # Pruning again removes nothing more.
    assert plan_prune(catalog, "p", retention_lookup({"nightly": keep_last(2)}, None), NOW).to_remove == []


def test_the_pool_default_applies_to_jobs_without_retention_and_none_keeps_everything(tmp_path: Path) -> None:
    cal = calendar(tmp_path, "dedup")
    for day in range(3):
        cal.back_up(f"a-{day}", DAY0 + timedelta(days=day), {"web": "ok"}, job="a")
        cal.back_up(f"b-{day}", DAY0 + timedelta(days=day, hours=1), {"web": "ok"}, job="b")
    catalog = Catalog.open(str(tmp_path / "pool"), "p")
    jobs = {"a": keep_last(1), "b": JobRetention(None, "UTC")}
    assert plan_prune(catalog, "p", retention_lookup(jobs, None), NOW).to_remove == ["a-0", "a-1"]
    plan = plan_prune(catalog, "p", retention_lookup(jobs, RetentionPolicy(keep_last=2)), NOW)
    assert plan.to_remove == ["a-0", "b-0", "a-1"]  # oldest first
    assert {v.job_name: v.retention.source for v in plan.vms} == {"a": "job", "b": "pool default"}
    only_b = plan_prune(catalog, "p", retention_lookup(jobs, None), NOW, job="b")
    assert only_b.to_remove == [] and only_b.unmanaged_jobs == ["b"]


def test_deleting_an_unknown_or_deleted_set_is_refused_before_anything_goes(tmp_path: Path) -> None:
    cal = calendar(tmp_path, "dedup")
    cal.back_up("s1", DAY0, {"web": "ok"})
    cal.back_up("s2", DAY0 + timedelta(days=1), {"web": "ok"})
    catalog = Catalog.open(str(tmp_path / "pool"), "p")
    with pytest.raises(Exception, match=r"pool p holds no backup set nope; nothing was deleted"):
        sets_to_delete(catalog, "p", ["s1", "nope"])
    delete_sets(
        cal.pool,
        cal.writer,
        sets_to_delete(catalog, "p", ["s1"]).records,
        now=NOW,
        reason="manual",
        deleted_by="admin",
    )
    catalog.refresh()
    assert sets_to_delete(catalog, "p", ["s1", "s2"]) == ([catalog.backup_set("s2", "p")], ["s1"])
    assert cal.restored_sha256("s2", "web") == cal.disks["s2"]["web"]


def test_a_set_under_object_lock_is_kept_and_the_refusal_says_until_when(
    tmp_path: Path, moto_s3: str
) -> None:
    settings = s3_settings(
        moto_s3, new_bucket(moto_s3, object_lock=True), object_lock_mode="governance", retention_days=3
    )
    pool = create_pool_in(S3BlobStore(settings, "locked"), "dedup", chunk_size=CHUNK)
    (tmp_path / "work").mkdir()
    cal = Calendar(pool, CatalogWriter(str(tmp_path / "catalog")), tmp_path / "work")
    cal.back_up("s1", DAY0, {"web": "ok"})
    catalog = Catalog.open(str(tmp_path / "catalog"), "locked")
    now = datetime.now(UTC)

    report = delete_sets(
        pool,
        cal.writer,
        sets_to_delete(catalog, "locked", ["s1"]).records,
        now=now,
        reason="manual",
        deleted_by="admin",
    )

    [refused] = report.refused
    until = (now + timedelta(days=3)).strftime("%Y-%m-%d")
    assert refused.message.startswith(f"backup set s1 of pool locked is under S3 Object Lock until {until} ")
    assert "cannot be deleted before then" in refused.message and "\n" not in refused.message
    catalog.refresh()
    assert list(catalog.list_sets()["set_id"]) == ["s1"] and expired_sets(catalog, "locked") == set()
    assert cal.restored_sha256("s1", "web") == cal.disks["s1"]["web"]
    # Once the lock has ended the same set goes.
    later = delete_sets(
        pool,
        cal.writer,
        sets_to_delete(catalog, "locked", ["s1"]).records,
        now=now + timedelta(days=4),
        reason="manual",
        deleted_by="admin",
    )
    assert later.deleted == ["s1"]


def test_tape_sets_expire_and_a_cartridge_is_released_only_when_every_set_on_it_is(tmp_path: Path) -> None:
    library = TapeLibrary.create(
        tmp_path / "library", LibrarySettings(block_size=16 << 10, capacity_bytes=8 << 20), ["T001", "T002"]
    )
    pool = create_tape_pool(tmp_path / "home", library, chunk_size=CHUNK)
    (tmp_path / "work").mkdir()
    cal = Calendar(pool, CatalogWriter(str(tmp_path / "home")), tmp_path / "work")
    cal.back_up("s1", DAY0, {"web": "ok"})
    cal.back_up("s2", DAY0 + timedelta(days=1), {"web": "ok"})
    tape = (tmp_path / "library" / "cartridges" / "T001.tape").read_bytes()
    catalog = Catalog.open(str(tmp_path / "home"), "p")

    first = delete_sets(
        pool,
        cal.writer,
        sets_to_delete(catalog, "p", ["s1"]).records,
        now=NOW,
        reason="manual",
        deleted_by="admin",
    )
    catalog.refresh()
    assert (
        first.outcomes[0].message
        == "backup set s1 expired (its data stays on the media until they are reused)"
    )
    assert released_media(pool, expired_sets(catalog, "p")) == []  # s2 is on T001 too
    assert list(catalog.list_sets()["set_id"]) == ["s2"]
    assert catalog.query("SELECT data_removed FROM set_deletions")["data_removed"].tolist() == [False]

    delete_sets(
        pool,
        cal.writer,
        sets_to_delete(catalog, "p", ["s2"]).records,
        now=NOW,
        reason="manual",
        deleted_by="admin",
    )
    catalog.refresh()
    assert released_media(pool, expired_sets(catalog, "p")) == ["T001"]  # T002 holds nothing
    # Nothing on the cartridge was overwritten.
    assert (
        hashlib.sha256((tmp_path / "library" / "cartridges" / "T001.tape").read_bytes()).digest()
        == hashlib.sha256(tape).digest()
    )


def test_optical_sets_expire_and_a_closed_disc_is_released_only_when_every_set_on_it_is(
    tmp_path: Path,
) -> None:
    settings = OpticalSettings.model_validate(
        {"disc_bytes": 1 << 20, "label_prefix": "OPT_", "output_dir": str(tmp_path / "burned")}
    )
    pool = create_optical_pool(tmp_path / "home", settings, chunk_size=CHUNK)
    (tmp_path / "work").mkdir()
    cal = Calendar(pool, CatalogWriter(str(tmp_path / "home")), tmp_path / "work")
    cal.back_up("s1", DAY0, {"web": "ok"})
    cal.back_up("s2", DAY0 + timedelta(days=1), {"web": "ok"})
    pool.close_disc()
    (image,) = (tmp_path / "burned").glob("*.iso")
    burned = hashlib.sha256(image.read_bytes()).digest()
    catalog = Catalog.open(str(tmp_path / "home"), "p")

    delete_sets(
        pool,
        cal.writer,
        sets_to_delete(catalog, "p", ["s1"]).records,
        now=NOW,
        reason="manual",
        deleted_by="a",
    )
    catalog.refresh()
    assert released_media(pool, expired_sets(catalog, "p")) == []  # s2 is on the disc too
    assert catalog.query("SELECT data_removed FROM set_deletions")["data_removed"].tolist() == [False]
    assert cal.restored_sha256("s2", "web") == cal.disks["s2"]["web"]

    delete_sets(
        pool,
        cal.writer,
        sets_to_delete(catalog, "p", ["s2"]).records,
        now=NOW,
        reason="manual",
        deleted_by="a",
    )
    catalog.refresh()
    assert released_media(pool, expired_sets(catalog, "p")) == [image.stem]
    assert list(catalog.list_sets()["set_id"]) == []
    assert hashlib.sha256(image.read_bytes()).digest() == burned  # the image is never rewritten
