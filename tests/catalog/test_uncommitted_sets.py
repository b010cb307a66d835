"""A backup killed between its disks' commit and its set's leaves manifests no catalog row
commits (found by the crash harness, tests/reliability: killed at `catalog.before-commit`).
Invisible to every reader, they pinned their chunks against garbage collection for good; the
job's next run removes them, and nothing else."""

from __future__ import annotations

import os
from pathlib import Path

from support.catalog import SMALL_CHUNK, make_set

from bingobackup.pools import Pool
from bingobackup.pools.open import create_pool
from catalog import CatalogWriter
from catalog.lifecycle import remove_uncommitted_sets

COMMITTED = "nightly-20261206T000000Z-aaaaaa"
KILLED = "nightly-20261206T010000Z-bbbbbb"
OTHER_JOB = "nightly-extra-20261206T010000Z-cccccc"  # another job whose name starts alike


def _disk(pool: Pool, set_id: str, volume_id: str) -> None:
    writer = pool.open_disk_writer(set_id, volume_id, SMALL_CHUNK)
    writer.put_chunk(0, os.urandom(SMALL_CHUNK))
    writer.commit()


def test_the_jobs_next_run_removes_only_its_uncommitted_sets(tmp_path: Path) -> None:
    pool = create_pool(tmp_path / "pool", "dedup", name="pool", chunk_size=SMALL_CHUNK)
    writer = CatalogWriter(str(tmp_path / "pool"))
    for set_id in (COMMITTED, KILLED, OTHER_JOB):
        _disk(pool, set_id, "vol-web-root")
    writer.write_backup_set(*make_set(COMMITTED, pool="pool").args())

    removed = remove_uncommitted_sets(pool, writer, "nightly")

    assert removed == [KILLED]
    assert {set_id for set_id, _ in pool.list_manifests()} == {COMMITTED, OTHER_JOB}
    assert remove_uncommitted_sets(pool, writer, "nightly") == []
