"""Verifying a pool's catalog files: which are damaged, which a committed set lacks.

A file is damaged when it cannot be read as the views read it (truncated, bytes flipped —
files carry page checksums —, not Parquet, a column of the wrong type) or when its rows do
not belong to the set (or run) and commit its name says: each file is `<key>.<commit
id>.parquet` and every row carries that key and commit id. Readers skip damaged files (with
a warning) so the rest of the pool stays usable; `bingobackup catalog check` lists them and
`catalog rebuild` (`catalog.rebuild`) rebuilds what they held.
"""

from __future__ import annotations

import functools
import posixpath
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from catalog.location import PARQUET_SUFFIX, CatalogLocation
from catalog.schema import TABLES, BackupSetRecord, JobRunRecord, row_to_record

if TYPE_CHECKING:
    import pyarrow.dataset as ds


@functools.cache
def parquet_format() -> ds.ParquetFileFormat:
    """How every catalog file is read. Page checksums are verified on every read, so a flipped
    byte in a page is an error, never a wrong row. Imported when first read: pyarrow.dataset
    imports pandas, which a backup (it only writes the catalog) need not load (0.3-0.5 s)."""
    import pyarrow.dataset as ds

    return ds.ParquetFileFormat(
        default_fragment_scan_options=ds.ParquetFragmentScanOptions(page_checksum_verification=True)
    )


# Tables whose files hold one run each (a backup's job run, a verify run), named by its id.
RUN_TABLES = ("job_runs", "verifications")
# The column every row of a file shares with the file's name.
KEY_COLUMN = {table: "run_id" if table in RUN_TABLES else "set_id" for table in TABLES}

# The tables of a backup set, in commit order: the commit record last.
SET_TABLES = ("chunks", "disk_backups", "vm_backups", "backup_sets")

# Job run states that say the run committed the set it names.
FINAL_WITH_SET = ("completed", "partial")


@dataclass(frozen=True)
class DamagedFile:
    """A catalog file that cannot be used, and why."""

    table: str
    path: str
    reason: str

    @property
    def key(self) -> str:
        return split_name(self.path)[0]

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class DamagedFileError(Exception):
    def __init__(self, damaged: DamagedFile) -> None:
        super().__init__(str(damaged))
        self.damaged = damaged


@dataclass(frozen=True)
class MissingFile:
    """A file a committed set needs and the catalog lacks."""

    table: str
    set_id: str
    commit_id: str
    why: str

    def __str__(self) -> str:
        return f"{self.table}/{self.set_id}.{self.commit_id or '<commit>'}{PARQUET_SUFFIX}: {self.why}"


@dataclass
class CatalogCheck:
    """What `check_catalog` found in one pool's catalog."""

    files: int = 0
    damaged: list[DamagedFile] = field(default_factory=list)
    missing: list[MissingFile] = field(default_factory=list)
    # Readable commit records by set id: (commit id, record); and every readable job run record.
    committed: dict[str, tuple[str, BackupSetRecord]] = field(default_factory=dict)
    runs: list[JobRunRecord] = field(default_factory=list)
    names: dict[str, set[str]] = field(default_factory=dict)  # table → readable file names
    # Runs committed sets name that have no record at all (a lost file, or sets `pool scan` rebuilt).
    unrecorded_runs: dict[str, str] = field(default_factory=dict)  # run id → set id

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.missing


def split_name(path: str) -> tuple[str, str]:
    """(key, commit id) of `<key>.<commit id>.parquet`; a key may itself hold dots."""
    name = posixpath.basename(path).removesuffix(PARQUET_SUFFIX)
    key, _, commit_id = name.rpartition(".")
    return key, commit_id


def read_file(location: CatalogLocation, table: str, path: str) -> pa.Table:
    """One catalog file as the views read it, verified; DamagedFileError says what is wrong."""
    try:
        import pyarrow.dataset as ds

        data = ds.dataset(
            [path], schema=TABLES[table], format=parquet_format(), filesystem=location.filesystem
        ).to_table()
    except (OSError, pa.ArrowException) as exc:
        raise DamagedFileError(DamagedFile(table, path, f"unreadable ({exc})")) from None
    key, commit_id = split_name(path)
    if table == "backup_sets" and data.num_rows != 1:
        raise DamagedFileError(
            DamagedFile(table, path, f"holds {data.num_rows} rows; a commit record holds exactly one")
        )
    key_column = KEY_COLUMN[table]
    for column, expected in ((key_column, key), ("commit_id", commit_id)):
        values = data.column(column)
        if data.num_rows and not pc.all(pc.fill_null(pc.equal(values, expected), False)).as_py():
            found = sorted({str(v) for v in values.unique().to_pylist()})[:3]
            raise DamagedFileError(
                DamagedFile(
                    table, path, f"its rows have {column} {found}, not the {expected!r} its name says"
                )
            )
    return data


def check_catalog(location: CatalogLocation) -> CatalogCheck:
    """Reads every catalog file; lists the damaged ones and the files committed sets lack."""
    found = CatalogCheck()
    for table in TABLES:
        found.names[table] = set()
        for path in location.list_files(table):
            found.files += 1
            try:
                data = read_file(location, table, path)
            except DamagedFileError as error:
                found.damaged.append(error.damaged)
                continue
            found.names[table].add(posixpath.basename(path))
            if table == "backup_sets":
                record = row_to_record(BackupSetRecord, data.to_pylist()[0])
                commit_id = split_name(path)[1]
                earlier = found.committed.get(record.set_id)
                # As the views do: should a set id be committed twice, the first commit is the set.
                if earlier is None or _order(commit_id, record) < _order(*earlier):
                    found.committed[record.set_id] = (commit_id, record)
            elif table == "job_runs":
                found.runs.extend(row_to_record(JobRunRecord, row) for row in data.to_pylist())
    damaged_sets = {d.key for d in found.damaged if d.table == "backup_sets"}
    for set_id, (commit_id, _) in sorted(found.committed.items()):
        for table in SET_TABLES[:-1]:
            name = f"{set_id}.{commit_id}{PARQUET_SUFFIX}"
            if name not in found.names[table] and not _is_damaged(found, table, name):
                found.missing.append(
                    MissingFile(table, set_id, commit_id, "the set's commit record names it; it is gone")
                )
    for run in found.runs:
        known = run.set_id in found.committed or run.set_id in damaged_sets
        reported = any(m.set_id == run.set_id for m in found.missing)
        if run.status in FINAL_WITH_SET and run.set_id and not known and not reported:
            why = f"job run {run.run_id} recorded that it committed this set; its commit record is gone"
            found.missing.append(MissingFile("backup_sets", run.set_id, "", why))
    recorded = {run.run_id for run in found.runs} | {d.key for d in found.damaged if d.table == "job_runs"}
    for set_id, (_, record) in sorted(found.committed.items()):
        if record.run_id and record.run_id not in recorded:
            found.unrecorded_runs[record.run_id] = set_id
    return found


def _is_damaged(found: CatalogCheck, table: str, name: str) -> bool:
    return any(d.table == table and posixpath.basename(d.path) == name for d in found.damaged)


def _order(commit_id: str, record: BackupSetRecord) -> tuple[str, str]:
    return (record.committed_at.isoformat() if record.committed_at else "", commit_id)
