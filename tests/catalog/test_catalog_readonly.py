"""`catalog query` and `Catalog.query` only read the catalog: DuckDB is locked down once the
pool's files are registered, and every statement but a SELECT is refused with a clear message.
Each attack here succeeded before (issue 28, item 3)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from support.catalog import back_up_sets
from typer.testing import CliRunner, Result

from bingobackup.cli.main import app
from catalog import Catalog, CatalogQueryError

runner = CliRunner()


@pytest.fixture
def pool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path / "home"))
    back_up_sets(tmp_path / "pool")
    return tmp_path / "pool"


def query(pool_dir: Path, sql: str) -> Result:
    return runner.invoke(app, ["catalog", "query", "--pool", str(pool_dir), sql])


def refused(result: Result, message: str) -> None:
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, CatalogQueryError), result.exception
    assert message in str(result.exception)


def test_copy_to_a_file_is_refused_and_writes_nothing(pool_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "x.csv"
    refused(
        query(pool_dir, f"COPY (SELECT 42) TO '{target}'"),
        "The catalog is read-only: COPY statements are refused",
    )
    assert not target.exists()


def test_attach_and_create_table_are_refused(pool_dir: Path, tmp_path: Path) -> None:
    evil = tmp_path / "evil.db"
    refused(query(pool_dir, f"ATTACH '{evil}' AS evil"), "ATTACH statements are refused")
    refused(query(pool_dir, "CREATE TABLE evil.t AS SELECT 1"), "CREATE statements are refused")
    refused(query(pool_dir, "CREATE TABLE t AS SELECT 1"), "CREATE statements are refused")
    assert not evil.exists()


def test_reading_a_host_file_is_refused(pool_dir: Path) -> None:
    result = query(pool_dir, "SELECT * FROM read_csv_auto('/etc/passwd')")
    refused(result, "may read only its views, not files")
    assert "root" not in result.output


def test_overwriting_a_commit_record_is_refused_and_the_set_stays(pool_dir: Path) -> None:
    [record] = (pool_dir / "catalog" / "backup_sets").glob("set-web.*.parquet")
    before = hashlib.sha256(record.read_bytes()).hexdigest()
    refused(
        query(pool_dir, f"COPY (SELECT 42) TO '{record}' (FORMAT parquet)"), "COPY statements are refused"
    )
    assert hashlib.sha256(record.read_bytes()).hexdigest() == before
    listed = runner.invoke(app, ["sets", "list", "--pool", str(pool_dir)])
    assert listed.exit_code == 0, listed.output
    assert "set-web" in listed.output and "set-db" in listed.output


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("INSTALL httpfs", "LOAD statements are refused"),
        ("LOAD httpfs", "LOAD statements are refused"),
        ("SET enable_external_access = true", "SET statements are refused"),
        ("PRAGMA enable_profiling", "PRAGMA statements are refused"),
        ("EXPLAIN ANALYZE COPY (SELECT 1) TO 'y.csv'", "EXPLAIN statements are refused"),
        ("DROP VIEW chunks", "DROP statements are refused"),
        ("SELECT 1; DROP VIEW chunks", "one statement at a time; this text holds 2"),
        ("EXPORT DATABASE 'dump'", "EXPORT statements are refused"),
        ("SELECT * FROM read_parquet('catalog/chunks/*.parquet')", "not files"),
        ("SELECT * FROM glob('/etc/*')", "not files"),
    ],
)
def test_the_api_refuses_every_statement_that_is_not_a_read_of_the_views(
    pool_dir: Path, sql: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths above: nothing may appear here
    with Catalog.open(str(pool_dir)) as cat:
        with pytest.raises(CatalogQueryError, match=message) as refusal:
            cat.query(sql)
        assert "read-only" in str(refusal.value)
        assert cat.query("SELECT count(*) AS n FROM chunks")["n"][0] == 6  # the views still read
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pool", "sources"]


def test_reads_still_work(pool_dir: Path) -> None:
    with Catalog.open(str(pool_dir)) as cat:
        assert sorted(cat.query("FROM backup_sets")["set_id"]) == ["set-db", "set-web"]
        assert "vm_name" in cat.query("DESCRIBE vm_backups")["column_name"].tolist()
        assert len(cat.query("SHOW TABLES")) >= 5
    result = query(pool_dir, "WITH s AS (SELECT set_id FROM backup_sets) SELECT count(*) AS n FROM s")
    assert result.exit_code == 0, result.output
