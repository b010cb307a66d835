"""Two writers storing the same new chunk at the same moment each keep a copy (version-2
dedup pools skip the per-chunk existence check, docs/format.md); garbage collection then
keeps one copy, so a race costs space only until the next `gc` (issue 26, concurrency)."""

from __future__ import annotations

import os
from pathlib import Path

from support.pools import CHUNK, TestDisk, read_back, write_disk

from bingobackup.lifecycle.gc import collect_garbage, report_rows
from bingobackup.pools import LocalDirBlobStore, Pool, create_pool_in, open_pool_in
from bingobackup.pools.dedup import DedupPool, describe_packs


def stored_copies(pool: Pool) -> dict[str, int]:
    """Chunk id -> how many copies the pool's packs hold."""
    assert isinstance(pool, DedupPool)
    copies: dict[str, int] = {}
    for entries in describe_packs(pool).entries.values():
        for entry in entries:
            copies[entry.digest] = copies.get(entry.digest, 0) + 1
    return copies


def test_gc_keeps_one_copy_of_a_chunk_two_writers_stored_at_once(tmp_path: Path) -> None:
    store = LocalDirBlobStore(tmp_path / "pool", "pool")
    create_pool_in(store, "dedup", chunk_size=CHUNK)
    shared = os.urandom(2 * CHUNK)
    disks = {"set-a": TestDisk(shared + os.urandom(CHUNK)), "set-b": TestDisk(os.urandom(CHUNK) + shared)}
    # Two processes' pools: each opened its writer and read the pool's index before the
    # other stored anything, as two backups starting together do.
    writers = {}
    for set_id, disk in disks.items():
        writer = open_pool_in(store).open_disk_writer(set_id, "vol-a", len(disk.data))
        assert not writer.has(writer.chunk_digest(shared[:CHUNK]))  # the index is loaded now
        writers[set_id] = writer
    for set_id, disk in disks.items():
        write_disk(writers[set_id], disk, threads=1)
    pool = open_pool_in(store)
    assert sorted(stored_copies(pool).values()) == [1, 1, 2, 2]  # the race kept two copies
    stored_before = sum(info.size for info in store.list("data/"))

    report = collect_garbage(pool)  # the default threshold: the dropped copies leave packs a third live

    after = open_pool_in(store)
    assert sorted(stored_copies(after).values()) == [1, 1, 1, 1]
    assert report.duplicates_dropped == 2
    assert ("duplicate chunks dropped", "2") in report_rows(report)
    assert report.stored_bytes < stored_before
    for set_id, disk in disks.items():
        assert read_back(after, after.load_manifest(set_id, "vol-a")) == disk.data
    assert collect_garbage(after).duplicates_dropped == 0
