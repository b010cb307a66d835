"""Writing sets and reading them back through the DuckDB views."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from support.catalog import CHUNK, T0, make_set

from catalog import Catalog, CatalogNotFoundError, CatalogQueryError, CatalogWriter
from catalog.schema import TABLES


def test_written_set_is_visible_in_every_view(tmp_path: Path) -> None:
    parts = make_set("set-1", vms=("web", "db"))
    committed = CatalogWriter(str(tmp_path)).write_backup_set(*parts.args())

    with Catalog.open(str(tmp_path), pool="p1") as cat:
        sets = cat.query("SELECT * FROM backup_sets")
        assert sets["set_id"].tolist() == ["set-1"]
        assert sets["pool"].tolist() == ["p1"]
        # The writer derives the counts from the rows, so they agree with them.
        assert (committed.vm_count, committed.disk_count) == (2, 4)
        assert sets["logical_bytes"].iloc[0] == sum(d.size_bytes for d in parts.disks)
        assert sets["schema_version"].iloc[0] == 1
        assert cat.query("SELECT count(*) AS n FROM vm_backups")["n"].iloc[0] == 2
        assert cat.query("SELECT count(*) AS n FROM disk_backups")["n"].iloc[0] == 4
        assert (
            cat.query("SELECT count(*) AS n FROM chunks")["n"].iloc[0] == 6
        )  # 3 per root disk, data disks empty
        nic_ips = cat.query(
            "SELECT n.private_ip_address AS ip FROM vm_backups, UNNEST(nics) AS u(n) "
            "WHERE vm_name = 'web' ORDER BY n.device_index"
        )["ip"].tolist()
        assert nic_ips == ["172.16.0.10", "10.9.0.5"]


def test_vm_backup_returns_everything_a_restore_needs(tmp_path: Path) -> None:
    parts = make_set("set-1", vms=("web",))
    CatalogWriter(str(tmp_path)).write_backup_set(*parts.args())

    with Catalog.open(str(tmp_path), pool="p1") as cat:
        by_name = cat.vm_backup("set-1", "web")
        by_id = cat.vm_backup("set-1", parts.vms[0].vm_id)
    assert by_name == by_id
    assert by_name.pool == "p1"
    assert by_name.vm == parts.vms[0]
    assert by_name.vm.tags == {"env": "prod"}
    assert [d.volume_id for d in by_name.disks] == ["vol-web-root", "vol-web-data"]  # system disk first
    root = by_name.disks[0]
    assert (root.size_bytes, root.is_root, root.storage_id, root.format, root.device_name) == (
        3 * CHUNK + 1000,
        True,
        "storage-1",
        "qcow2",
        "/dev/vda",
    )
    assert (root.chunk_size, root.chunk_count) == (CHUNK, 3)
    assert root.data_bytes == parts.manifests[0].data_bytes
    assert root.referenced_stored_bytes == parts.manifests[0].stored_bytes


def test_disk_manifest_round_trips(tmp_path: Path) -> None:
    parts = make_set("set-1", vms=("web",))
    CatalogWriter(str(tmp_path)).write_backup_set(*parts.args())

    with Catalog.open(str(tmp_path)) as cat:
        for original in parts.manifests:
            assert cat.disk_manifest("set-1", original.volume_id) == original
    assert parts.manifests[1].chunks == ()  # the all-zero disk round-trips too


def test_missing_set_vm_and_disk_say_what_to_do(tmp_path: Path) -> None:
    CatalogWriter(str(tmp_path)).write_backup_set(*make_set("set-1").args())
    with Catalog.open(str(tmp_path)) as cat:
        with pytest.raises(CatalogNotFoundError, match=r"No committed backup set set-9.*sets list"):
            cat.vm_backup("set-9", "web")
        with pytest.raises(CatalogNotFoundError, match=r"no VM named or with id 'mail'.*SELECT vm_id"):
            cat.vm_backup("set-1", "mail")
        with pytest.raises(CatalogNotFoundError, match=r"no disk vol-x"):
            cat.disk_manifest("set-1", "vol-x")


def test_list_sets_filters_by_vm_job_pool_and_time(tmp_path: Path) -> None:
    writer = CatalogWriter(str(tmp_path))
    writer.write_backup_set(*make_set("s1", job="nightly", started=T0, vms=("web",)).args())
    writer.write_backup_set(
        *make_set("s2", job="nightly", started=T0 + timedelta(days=1), vms=("web", "db")).args()
    )
    writer.write_backup_set(*make_set("s3", job="weekly", started=T0 + timedelta(days=2), vms=("db",)).args())

    with Catalog.open(str(tmp_path), pool="p1") as cat:
        ids = lambda **kw: cat.list_sets(**kw)["set_id"].tolist()  # noqa: E731
        assert ids() == ["s3", "s2", "s1"]  # newest first
        assert ids(vm="web") == ["s2", "s1"]
        db_id = make_set("x", vms=("db",)).vms[0].vm_id
        assert ids(vm=db_id) == ["s3", "s2"]
        assert ids(job="weekly") == ["s3"]
        assert ids(pool="p1") == ["s3", "s2", "s1"]
        assert ids(pool="other") == []
        assert ids(since=T0 + timedelta(hours=12)) == ["s3", "s2"]
        assert ids(until=T0 + timedelta(days=1)) == ["s1"]
        assert ids(since=T0.replace(tzinfo=None), until=(T0 + timedelta(hours=1)).replace(tzinfo=None)) == [
            "s1"
        ]
        assert ids(vm="web", job="weekly") == []

        latest_web = cat.latest_set("web")
        assert latest_web is not None and latest_web.set_id == "s2" and latest_web.pool == "p1"
        latest_db = cat.latest_set(db_id)
        assert latest_db is not None and latest_db.set_id == "s3"
        assert cat.latest_set("nobody") is None


def test_latest_set_skips_sets_where_the_vm_failed(tmp_path: Path) -> None:
    writer = CatalogWriter(str(tmp_path))
    writer.write_backup_set(*make_set("good", started=T0).args())
    failed = make_set("bad", started=T0 + timedelta(days=1))
    failed.vms[0] = failed.vms[0].model_copy(update={"status": "failed", "error": "snapshot timed out"})
    failed.disks, failed.manifests = [], []
    writer.write_backup_set(*failed.args())

    with Catalog.open(str(tmp_path)) as cat:
        latest = cat.latest_set("web")
    assert latest is not None and latest.set_id == "good"


def test_two_pools_are_unioned_with_their_names(tmp_path: Path) -> None:
    CatalogWriter(str(tmp_path / "a")).write_backup_set(*make_set("s-a", pool="written-a").args())
    CatalogWriter(str(tmp_path / "b")).write_backup_set(
        *make_set("s-b", started=T0 + timedelta(days=1)).args()
    )
    CatalogWriter(str(tmp_path / "b")).write_backup_set(*make_set("s-a").args())  # same id, other pool

    with Catalog([("pool-a", str(tmp_path / "a")), ("pool-b", str(tmp_path / "b"))]) as cat:
        rows = cat.query("SELECT pool, set_id FROM backup_sets ORDER BY pool, set_id")
        assert list(zip(rows["pool"], rows["set_id"], strict=True)) == [
            ("pool-a", "s-a"),
            ("pool-b", "s-a"),
            ("pool-b", "s-b"),
        ]
        per_pool = cat.query("SELECT pool, count(*) AS n FROM chunks GROUP BY pool ORDER BY pool")
        assert per_pool["n"].tolist() == [3, 6]
        assert cat.list_sets(pool="pool-a")["set_id"].tolist() == ["s-a"]
        assert cat.disk_manifest("s-b", "vol-web-root").set_id == "s-b"
        with pytest.raises(
            CatalogQueryError, match=r"exists in pools \['pool-a', 'pool-b'\]; say which pool"
        ):
            cat.disk_manifest("s-a", "vol-web-root")
        assert cat.vm_backup("s-a", "web", pool="pool-a").pool == "pool-a"


def test_empty_catalog_gives_empty_views_with_columns(tmp_path: Path) -> None:
    with Catalog.open(str(tmp_path / "no-such-pool")) as cat:
        for view, schema in TABLES.items():
            frame = cat.query(f"SELECT * FROM {view}")
            assert len(frame) == 0
            assert list(frame.columns) == ["pool", *(n for n in schema.names if n != "pool")]
        assert cat.list_sets().empty
        assert cat.latest_set("web") is None
        assert cat.dedup_ratio_by_set().empty
    with Catalog([]) as nothing:
        assert nothing.query("SELECT * FROM vm_backups").empty


def test_refresh_shows_sets_written_after_opening(tmp_path: Path) -> None:
    with Catalog.open(str(tmp_path)) as cat:
        CatalogWriter(str(tmp_path)).write_backup_set(*make_set("late").args())
        assert cat.list_sets().empty
        cat.refresh()
        assert cat.list_sets()["set_id"].tolist() == ["late"]


def test_bad_sql_names_the_views_and_their_columns(tmp_path: Path) -> None:
    with Catalog.open(str(tmp_path)) as cat:
        with pytest.raises(CatalogQueryError) as caught:
            cat.query("SELECT vm FROM vm_backups")
        message = str(caught.value)
        assert 'Referenced column "vm" not found' in message
        for view in TABLES:
            assert f"  {view}(pool, schema_version, commit_id, " in message
        assert "vm_name" in message and "digest" in message
        with pytest.raises(CatalogQueryError, match="syntax error"):
            cat.query_arrow("SELEC 1")
        with pytest.raises(CatalogQueryError, match="backup_sets"):
            cat.query("SELECT * FROM sets")


def test_media_contents_names_the_disc_or_cartridge_of_every_disk(tmp_path: Path) -> None:
    parts = make_set("set-1", vms=("web",))
    root, data = parts.manifests
    on_disc = root.model_copy(
        update={
            "chunks": tuple(
                c.model_copy(update={"location": f"optical:DISC_000{1 + i // 2}:{i}:0"})
                for i, c in enumerate(root.chunks)
            )
        }
    )
    parts.manifests = [on_disc, data]
    CatalogWriter(str(tmp_path)).write_backup_set(*parts.args())
    with Catalog.open(str(tmp_path), pool="optical-1") as cat:
        media = cat.media_contents()
    rows = [
        tuple(r)
        for r in media[["medium_kind", "medium", "volume_id", "chunks", "first_file"]].itertuples(index=False)
    ]
    assert rows == [
        ("optical", "DISC_0001", "vol-web-root", 2, 0),
        ("optical", "DISC_0002", "vol-web-root", 1, 2),
    ]
