"""One damaged catalog file no longer makes the pool unusable (issue 28, item 4).

For every catalog table, one file of set `set-web` is truncated, has bytes flipped, or is
deleted. The other set (`set-db`) still lists, queries and exports byte-identically; readers
name the damaged file in a warning; `catalog check` names it and exits 1; `catalog rebuild`
moves it aside (kept, never deleted) and writes again what it held from the pool's manifests,
after which `check` passes and `set-web` exports byte-identically again.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.catalog import BackedUpSet, back_up_sets
from typer.testing import CliRunner

from bingobackup.cli.main import app
from catalog import Catalog, CatalogError
from catalog.query import CatalogDamageWarning
from catalog.schema import REBUILT_VM_STATUS

runner = CliRunner()
TABLES = ("backup_sets", "vm_backups", "disk_backups", "chunks", "job_runs")


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    return result.output


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip(path: Path) -> None:
    """Flips bytes in the middle of the key column's pages (set_id, or run_id for job_runs)."""
    meta = pq.read_metadata(path)
    key = "run_id" if path.parent.name == "job_runs" else "set_id"
    column = meta.row_group(0).column(meta.schema.names.index(key))
    start = column.dictionary_page_offset or column.data_page_offset
    middle = start + column.total_compressed_size // 2
    data = bytearray(path.read_bytes())
    for i in range(middle - 2, middle + 2):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def delete(path: Path) -> None:
    path.unlink()


DAMAGE: dict[str, Callable[[Path], None]] = {"truncate": truncate, "flip": flip, "delete": delete}


def export(pool_dir: Path, backed_up: BackedUpSet, output: Path) -> str:
    out = invoke(
        "export-disk", "--pool", str(pool_dir), "--set", backed_up.set_id,
        "--volume", backed_up.volume_id, "--output", str(output), "--sha256",
    )  # fmt: skip
    return hashlib.sha256(output.read_bytes()).hexdigest() if "sha256" in out else ""


@pytest.fixture
def pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[BackedUpSet]]:
    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path / "home"))
    return tmp_path / "pool", back_up_sets(tmp_path / "pool")


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("table", TABLES)
def test_one_damaged_file_spares_the_pool_and_rebuild_restores_it(
    pool: tuple[Path, list[BackedUpSet]], tmp_path: Path, table: str, damage: str
) -> None:
    pool_dir, (web, db) = pool
    key = "run-set-web" if table == "job_runs" else "set-web"
    [victim] = (pool_dir / "catalog" / table).glob(f"{key}.*.parquet")
    DAMAGE[damage](victim)

    # The undamaged set lists, queries and exports as before; a damaged file read is named.
    assert "set-db" in invoke("sets", "list", "--pool", str(pool_dir))
    out = invoke("catalog", "query", "--pool", str(pool_dir), f"SELECT count(*) AS n FROM {table}")
    if damage != "delete":
        assert f"skipped the damaged catalog file {victim}" in out
        assert f"catalog check --pool {pool_dir}`" in out  # as the pool was named
    assert export(pool_dir, db, tmp_path / "db.raw") == db.sha256
    with warnings.catch_warnings(record=True) as caught:  # the API warns as the CLI does
        warnings.simplefilter("always")
        with Catalog.open(str(pool_dir)) as cat:
            assert cat.vm_backup("set-db", db.vm_name).disks[0].volume_id == db.volume_id
    assert all(w.category is CatalogDamageWarning and str(victim) in str(w.message) for w in caught)

    # check names what is wrong and exits 1 (a lost job run record is only a note: the sets are whole).
    checked = invoke(
        "catalog",
        "check",
        "--pool",
        str(pool_dir),
        code=0 if (table, damage) == ("job_runs", "delete") else 1,
    )
    if damage != "delete":
        assert f"damaged {victim}:" in checked
    elif table == "job_runs":
        assert "set set-web names job run run-set-web, which has no record" in checked
    else:
        assert f"missing {table}/set-web." in checked

    rebuilt = invoke("catalog", "rebuild", "--pool", str(pool_dir))
    moved = list((pool_dir / "catalog" / "damaged" / table).glob(f"{victim.name}.*"))
    assert len(moved) == (0 if damage == "delete" else 1), rebuilt
    assert "0 not rebuilt" in rebuilt
    assert "0 damaged, 0 missing" in invoke("catalog", "check", "--pool", str(pool_dir))

    # Both sets are whole again: listed, exported byte-identically, runs recorded.
    listed = invoke("sets", "list", "--pool", str(pool_dir))
    assert "set-web" in listed and "set-db" in listed
    assert export(pool_dir, web, tmp_path / "web.raw") == web.sha256
    assert export(pool_dir, db, tmp_path / "db2.raw") == db.sha256
    with Catalog.open(str(pool_dir)) as cat:
        runs = cat.query("SELECT run_id, set_id, status FROM job_runs ORDER BY run_id").to_dict("records")
        assert runs == [
            {"run_id": "run-set-db", "set_id": "set-db", "status": "completed"},
            {"run_id": "run-set-web", "set_id": "set-web", "status": "completed"},
        ]
        if table == "vm_backups":  # its configuration is gone: disks export, the VM is not restored
            [vm] = cat.query("SELECT vm_id, status FROM vm_backups WHERE set_id = 'set-web'").to_dict(
                "records"
            )
            assert vm["status"] == REBUILT_VM_STATUS
            with pytest.raises(CatalogError, match="rebuilt from the pool without its configuration"):
                cat.vm_backup("set-web", vm["vm_id"])
        else:
            assert cat.vm_backup("set-web", web.vm_name).disks[0].volume_id == web.volume_id


def test_a_disk_whose_chunk_rows_are_lost_is_refused_not_exported_as_zeros(
    pool: tuple[Path, list[BackedUpSet]], tmp_path: Path
) -> None:
    pool_dir, (web, _) = pool
    [chunks] = (pool_dir / "catalog" / "chunks").glob("set-web.*.parquet")
    chunks.unlink()  # nothing to skip: the set's disk simply has no chunk rows, as if all zeros
    result = runner.invoke(
        app,
        ["export-disk", "--pool", str(pool_dir), "--set", "set-web", "--volume", web.volume_id,
         "--output", str(tmp_path / "web.raw")],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "holds 0 of the 3 chunk rows of disk vol-web-root of set set-web" in str(result.exception)
    assert not (tmp_path / "web.raw").exists()
    assert "missing chunks/set-web." in invoke("catalog", "check", "--pool", str(pool_dir), code=1)


def test_rebuild_keeps_a_set_no_job_run_vouches_for_out_and_says_so(
    pool: tuple[Path, list[BackedUpSet]],
) -> None:
    """A commit record lost together with its job run may have been an interrupted backup."""
    pool_dir, _ = pool
    for table, key in (("backup_sets", "set-web"), ("job_runs", "run-set-web")):
        [path] = (pool_dir / "catalog" / table).glob(f"{key}.*.parquet")
        truncate(path)
    out = invoke("catalog", "rebuild", "--pool", str(pool_dir), code=1)
    assert "not rebuilt set set-web: its commit record is damaged and no job run records" in out
    assert len(list((pool_dir / "catalog" / "damaged").rglob("*.parquet.*"))) == 2
    listed = invoke("sets", "list", "--pool", str(pool_dir))
    assert "set-db" in listed and "set-web" not in listed
