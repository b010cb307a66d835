"""The writer's promises: sets appear whole or not at all, files are never rewritten,
older files stay readable."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.catalog import SetParts, make_set

from catalog import Catalog, CatalogWriteError, CatalogWriter
from catalog.schema import BACKUP_SETS, VM_BACKUPS


def _files(root: Path) -> dict[str, tuple[str, int]]:
    """Every catalog file with its sha256 and mtime."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted((root / "catalog").rglob("*"))
        if p.is_file()
    }


class _Crash(Exception):
    pass


def _crash_before_commit(writer: CatalogWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    real = writer._write_new

    def write_new(table: str, name: str, data: pa.Table) -> None:
        if table == "backup_sets":
            raise _Crash("power lost")
        real(table, name, data)

    monkeypatch.setattr(writer, "_write_new", write_new)


def test_interrupted_set_is_invisible_and_a_retry_shows_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = make_set("set-1", vms=("web", "db"))
    crashing = CatalogWriter(str(tmp_path))
    _crash_before_commit(crashing, monkeypatch)
    with pytest.raises(_Crash):
        crashing.write_backup_set(*parts.args())
    assert {Path(f).parts[1] for f in _files(tmp_path)} == {"chunks", "disk_backups", "vm_backups"}

    with Catalog.open(str(tmp_path)) as cat:
        for view in ("backup_sets", "vm_backups", "disk_backups", "chunks"):
            assert cat.query(f"SELECT * FROM {view}").empty, view
        assert cat.latest_set("web") is None

    CatalogWriter(str(tmp_path)).write_backup_set(*parts.args())
    with Catalog.open(str(tmp_path)) as cat:
        assert cat.query("SELECT count(*) AS n FROM vm_backups")["n"].iloc[0] == 2
        assert cat.query("SELECT count(*) AS n FROM chunks")["n"].iloc[0] == 6
        assert cat.disk_manifest("set-1", "vol-web-root") == parts.manifests[0]


def test_files_are_never_rewritten(tmp_path: Path) -> None:
    writer = CatalogWriter(str(tmp_path))
    writer.write_backup_set(*make_set("set-1").args())
    first = _files(tmp_path)
    assert len(first) == 4 and all(name.endswith(".parquet") for name in first)

    writer.write_backup_set(*make_set("set-2").args())
    after = _files(tmp_path)
    assert {k: after[k] for k in first} == first
    assert len(after) == 8

    with pytest.raises(CatalogWriteError, match=r"set-1 is already committed .* never rewritten"):
        writer.write_backup_set(*make_set("set-1").args())
    assert _files(tmp_path) == after
    assert not [p for p in (tmp_path / "catalog").rglob(".*")]  # no temp files left behind


def test_older_file_without_newer_columns_still_reads(tmp_path: Path) -> None:
    parts = make_set("old-set")
    CatalogWriter(str(tmp_path)).write_backup_set(*parts.args())
    # Rewrite the set as an older writer would have (this test may; the writer never does):
    # files that predate `backup_host`, `state` and `tags_json`.
    for table, schema, dropped in (
        ("backup_sets", BACKUP_SETS, ["backup_host"]),
        ("vm_backups", VM_BACKUPS, ["state", "tags_json"]),
    ):
        [path] = (tmp_path / "catalog" / table).glob("*.parquet")
        old = pq.read_table(path, schema=schema).drop_columns(dropped)
        pq.write_table(old, path)
        assert not set(dropped) & set(pq.read_schema(path).names)

    with Catalog.open(str(tmp_path)) as cat:
        row = cat.query("SELECT backup_host, vm_count FROM backup_sets")
        assert row["backup_host"].isna().all() and row["vm_count"].tolist() == [1]
        vm = cat.vm_backup("old-set", "web").vm
        assert (vm.state, vm.tags, vm.nics) == ("", {}, parts.vms[0].nics)  # defaults for the missing
        assert cat.latest_set("web") is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.manifests.pop(), r"disks without a manifest \['vol-web-data'\]"),
        (lambda p: p.vms.clear(), r"belong to no VM passed with the set"),
        (
            lambda p: p.disks.__setitem__(0, p.disks[0].model_copy(update={"size_bytes": 1})),
            r"vol-web-root of set set-1 is 1 bytes but its manifest covers",
        ),
        (
            lambda p: p.disks.__setitem__(0, p.disks[0].model_copy(update={"set_id": "other"})),
            r"Rows of another set",
        ),
        (
            lambda p: setattr(p, "backup_set", p.backup_set.model_copy(update={"set_id": "../x"})),
            r"cannot name a catalog file",
        ),
    ],
)
def test_inconsistent_sets_are_refused_before_anything_is_written(
    tmp_path: Path, change: Callable[[SetParts], object], message: str
) -> None:
    parts = make_set("set-1")
    change(parts)
    with pytest.raises(CatalogWriteError, match=message):
        CatalogWriter(str(tmp_path)).write_backup_set(*parts.args())
    assert not (tmp_path / "catalog").exists()


def test_unwritable_pool_says_what_to_check(tmp_path: Path) -> None:
    blocker = tmp_path / "pool"
    blocker.mkdir()
    (blocker / "catalog").write_text("not a directory")
    with pytest.raises(
        CatalogWriteError, match=r"Could not write catalog file .*Check free space and permissions"
    ):
        CatalogWriter(str(blocker)).write_backup_set(*make_set("set-1").args())
    assert os.path.isfile(blocker / "catalog")


def test_a_set_id_that_prefixes_another_is_its_own_set(tmp_path: Path) -> None:
    writer = CatalogWriter(str(tmp_path))
    writer.write_backup_set(*make_set("2025-03-01.1").args())
    writer.write_backup_set(*make_set("2025-03-01").args())  # not mistaken for a commit of the first
    with Catalog.open(str(tmp_path)) as cat:
        assert sorted(cat.list_sets()["set_id"]) == ["2025-03-01", "2025-03-01.1"]
        assert cat.disk_manifest("2025-03-01", "vol-web-root").set_id == "2025-03-01"
