"""The DuckDB views over one or more pools' catalog files.

Each pool's table is a pyarrow dataset projected onto the current schema (older files read
new columns as NULL, page checksums verified), registered in DuckDB; `_all_<table>` unions the pools with the reader's
pool name, and the public views keep only committed rows.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import duckdb

from catalog.health import parquet_format
from catalog.location import CatalogLocation
from catalog.schema import TABLES

VIEW_NAMES = tuple(TABLES)

_COMMITTED = (
    "EXISTS (SELECT 1 FROM backup_sets s "
    "WHERE s.pool = t.pool AND s.set_id = t.set_id AND s.commit_id = t.commit_id)"
)

# Public view definitions over the `_all_*` unions. A set retried after an interruption leaves
# rows under an earlier commit id that no backup_sets row names: those stay invisible.
_PUBLIC_VIEWS = {
    # If a set id were ever committed twice, the first commit is the set.
    # A set with a tombstone (`set_deletions`) is gone for every reader, and with it its rows
    # in the views below, which show only rows of sets this view shows.
    "backup_sets": "SELECT * FROM _all_backup_sets b "
    "WHERE NOT EXISTS (SELECT 1 FROM _all_set_deletions d WHERE d.pool = b.pool AND d.set_id = b.set_id) "
    "QUALIFY row_number() OVER (PARTITION BY pool, set_id ORDER BY committed_at, commit_id) = 1",
    "vm_backups": f"SELECT t.* FROM _all_vm_backups t WHERE {_COMMITTED}",
    "disk_backups": f"SELECT t.* FROM _all_disk_backups t WHERE {_COMMITTED}",
    "chunks": f"SELECT t.* FROM _all_chunks t WHERE {_COMMITTED}",
    # A run is recorded again as it progresses; its newest record is its state.
    "job_runs": "SELECT * FROM _all_job_runs "
    "QUALIFY row_number() OVER (PARTITION BY pool, run_id ORDER BY recorded_at DESC, commit_id DESC) = 1",
    # A set deleted twice (two prunes at once, or a retry) keeps its first tombstone.
    "set_deletions": "SELECT * FROM _all_set_deletions "
    "QUALIFY row_number() OVER (PARTITION BY pool, set_id ORDER BY deleted_at, commit_id) = 1",
    # Every verify run's row per set, kept (the history); `Catalog.list_sets` shows the newest.
    "verifications": "SELECT * FROM _all_verifications",
}


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def define_views(
    con: duckdb.DuckDBPyConnection,
    pools: Sequence[tuple[str, CatalogLocation]],
    skip: Collection[str] = (),
) -> None:
    """(Re)create every view from the files present now, but those in `skip` (damaged ones)."""
    import pyarrow.dataset as ds  # imports pandas: only when the catalog is read (health.py)

    for table, schema in TABLES.items():
        selects = []
        for index, (pool, location) in enumerate(pools):
            files = [path for path in location.list_files(table) if path not in skip]
            dataset = ds.dataset(
                files, schema=schema, format=parquet_format(), filesystem=location.filesystem
            )
            raw = f"_raw_{table}_{index}"
            con.register(raw, dataset)
            # The reader's name for the pool wins over the one the writer stored.
            columns = "* EXCLUDE (pool)" if "pool" in schema.names else "*"
            selects.append(f"SELECT {_sql_string(pool)} AS pool, {columns} FROM {raw}")
        if not selects:  # no pools at all: still give every view its columns
            con.register(f"_raw_{table}_empty", schema.empty_table())
            columns = "* EXCLUDE (pool)" if "pool" in schema.names else "*"
            selects.append(f"SELECT CAST(NULL AS VARCHAR) AS pool, {columns} FROM _raw_{table}_empty")
        con.execute(f"CREATE OR REPLACE VIEW _all_{table} AS " + " UNION ALL ".join(selects))
    for view, body in _PUBLIC_VIEWS.items():
        con.execute(f"CREATE OR REPLACE VIEW {view} AS {body}")


def describe_views(con: duckdb.DuckDBPyConnection) -> str:
    """Every public view with its columns, for error messages and `catalog query --help`."""
    lines = []
    for view in VIEW_NAMES:
        columns = [row[0] for row in con.sql(f"DESCRIBE {view}").fetchall()]
        lines.append(f"  {view}({', '.join(columns)})")
    return "\n".join(lines)
