"""Garbage collection and repack: exactly the unreferenced bytes go, nothing a running backup
or a live set needs does, and a rerun after kill -9 finishes the work."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.pools import CHUNK, TestDisk, make_disk, read_back, write_disk
from support.s3 import new_bucket, s3_settings

from bingobackup.format.manifest import DiskManifest
from bingobackup.lifecycle.gc import CRASH_POINT_ENV, collect_garbage
from bingobackup.pools import LocalDirBlobStore, Pool, PoolError, create_pool_in, locks, open_pool_in
from bingobackup.pools.dedup import DedupPool
from bingobackup.pools.locks import PoolLock, live_locks, read_locks, remove_stale_locks
from bingobackup.storage.base import BlobStore
from bingobackup.storage.s3store import S3BlobStore

ROOT = Path(__file__).resolve().parents[2]


def data_blobs(pool: Pool) -> dict[str, int]:
    prefixes = ("chunks/", "data/") if isinstance(pool, DedupPool) else ("packs/",)
    return {info.key: info.size for prefix in prefixes for info in pool.store.list(prefix)}


def referenced(pool: Pool) -> set[str]:
    keys = set()
    for set_id, volume_id in pool.list_manifests():
        for ref in pool.load_manifest(set_id, volume_id).chunks:
            keys.add(ref.location.rpartition("@")[0] if "@" in ref.location else ref.location)
    return keys


def five_chunk_disk() -> TestDisk:
    return TestDisk(os.urandom(5 * CHUNK))


def sharing_one_chunk(disk: TestDisk) -> TestDisk:
    """Its first chunk is `disk`'s; the other four are new."""
    return TestDisk(disk.data[:CHUNK] + os.urandom(4 * CHUNK))


def local_pool(path: Path, kind: str = "dedup") -> Pool:
    return create_pool_in(LocalDirBlobStore(path, "pool"), kind, chunk_size=CHUNK)  # type: ignore[arg-type]


def reopen(pool: Pool) -> Pool:
    return open_pool_in(pool.store)


def forget(pool: Pool, set_id: str) -> None:
    """Deletes a set's manifests only, as a prune does (or a crash between a standard pack's
    commit and its manifest leaves): its data is left to garbage collection."""
    for info in list(pool.store.list(f"manifests/{set_id}/")):
        pool.store.delete(info.key)


def backup(pool: Pool, set_id: str, disk: TestDisk) -> DiskManifest:
    # One writer thread: a disk's chunks land in one pack, so a pack's fill is known.
    return write_disk(pool.open_disk_writer(set_id, "vol-a", len(disk.data)), disk, threads=1)


@pytest.fixture(params=["dedup-local", "standard-local", "dedup-s3"])
def any_pool(request: pytest.FixtureRequest, tmp_path: Path) -> Pool:
    if request.param == "dedup-s3":
        endpoint = request.getfixturevalue("moto_s3")
        store: BlobStore = S3BlobStore(s3_settings(endpoint, new_bucket(endpoint)), "pool")
        return create_pool_in(store, "dedup", chunk_size=CHUNK)
    return local_pool(tmp_path / "pool", request.param.split("-")[0])


def test_gc_frees_exactly_the_unreferenced_bytes(any_pool: Pool) -> None:
    pool = any_pool
    first, second, third = make_disk(), make_disk(), make_disk()  # they share their text chunk
    backup(pool, "set-1", first)
    kept = backup(pool, "set-2", second)
    last = backup(pool, "set-3", third)
    forget(pool, "set-1")
    forget(pool, "set-3")
    before = data_blobs(pool)
    live = referenced(pool)
    expected = sum(size for key, size in before.items() if key not in live)
    assert expected > 0

    report = collect_garbage(pool, repack=False)

    assert report.bytes_freed == expected
    assert report.blobs_freed == len(before) - len(live)
    assert set(data_blobs(pool)) == live
    assert report.stored_bytes == sum(before[key] for key in live)
    # The repeated random chunk is stored once and counted once.
    assert report.live_bytes == sum({r.location: r.stored_size for r in kept.chunks}.values())
    assert read_back(reopen(pool), kept) == second.data
    with pytest.raises(PoolError):  # set-3's own chunks are gone
        read_back(reopen(pool), last)
    assert list(pool.store.list("gc/")) == [] and list(pool.store.list("locks/")) == []
    assert collect_garbage(pool, repack=False).bytes_freed == 0  # a rerun finds nothing more


def test_dry_run_reports_what_a_run_frees_and_changes_nothing(tmp_path: Path) -> None:
    pool = local_pool(tmp_path / "pool")
    disk = five_chunk_disk()
    backup(pool, "set-1", disk)
    kept = backup(pool, "set-2", sharing_one_chunk(disk))
    backup(pool, "set-3", make_disk())
    pool.delete_set("set-1")
    pool.delete_set("set-3")
    before = data_blobs(pool)

    planned = collect_garbage(pool, dry_run=True)
    assert data_blobs(pool) == before and list(pool.store.list("gc/")) == []
    done = collect_garbage(pool)
    assert (
        (planned.packs_repacked, planned.bytes_rewritten)
        == (done.packs_repacked, done.bytes_rewritten)
        == (
            1,
            kept.chunks[0].stored_size,
        )
    )
    # The dry run counts the live bytes a repack copies as not freed; the run frees the whole
    # old pack and writes a new one.
    assert planned.bytes_freed == done.bytes_freed - done.bytes_rewritten
    assert planned.blobs_freed == 1  # set-3's own pack; set-1's is repacked, not freed whole


def test_repack_moves_the_live_chunks_of_a_sparse_pack_and_rewrites_the_manifests(tmp_path: Path) -> None:
    pool = local_pool(tmp_path / "pool")
    disk = five_chunk_disk()
    gone = backup(pool, "set-1", disk)
    newer = sharing_one_chunk(disk)
    kept = backup(pool, "set-2", newer)
    old_pack = gone.chunks[0].location.rpartition("@")[0]
    assert kept.chunks[0].location == gone.chunks[0].location  # deduplicated into set-1's pack
    pool.delete_set("set-1")
    sizes = data_blobs(pool)

    assert collect_garbage(pool, repack_threshold=0.0).packs_repacked == 0  # threshold 0: never
    report = collect_garbage(pool)  # one of five chunks live: 20 % < 50 %

    assert (report.packs_repacked, report.manifests_rewritten) == (1, 1)
    assert report.bytes_rewritten == kept.chunks[0].stored_size
    rewritten = pool.load_manifest("set-2", "vol-a")
    new_pack = rewritten.chunks[0].location.rpartition("@")[0]
    assert new_pack != old_pack and old_pack not in data_blobs(pool)
    assert [r.model_dump(exclude={"location"}) for r in rewritten.chunks] == [
        r.model_dump(exclude={"location"}) for r in kept.chunks
    ]
    new_size = data_blobs(pool)[new_pack]
    assert report.bytes_freed == sizes[old_pack]
    assert report.stored_bytes == sum(sizes.values()) - sizes[old_pack] + new_size
    assert read_back(reopen(pool), rewritten) == newer.data
    # A reader that loaded the manifest before the repack finds the moved chunk by its id.
    assert read_back(reopen(pool), kept) == newer.data


def test_a_running_backup_keeps_its_chunks_and_a_later_one_never_reuses_condemned_ones(
    tmp_path: Path,
) -> None:
    pool = local_pool(tmp_path / "pool")
    disk = five_chunk_disk()
    backup(pool, "set-1", disk)
    pool.delete_set("set-1")
    running_pool = reopen(pool)
    running_disk = make_disk()
    running = running_pool.open_disk_writer("set-2", "vol-a", len(running_disk.data))
    for offset, data in running_disk.chunks()[:3]:
        running.put_chunk(offset, data)
    running.settle()  # its first chunks are durable in a pack no manifest names yet

    waiting = collect_garbage(reopen(pool))
    assert waiting.bytes_freed == 0 and waiting.deferred_bytes > 0
    assert [w.split(" on ")[0] for w in waiting.waiting_for] == ["backup"]

    # Set-1's data is condemned, not yet deleted: a backup starting now stores it anew.
    late = backup(reopen(pool), "set-3", disk)
    set1_pack = {key for key in data_blobs(pool) if key in referenced(pool)}
    for offset, data in running_disk.chunks()[3:]:
        running.put_chunk(offset, data)
    finished = running.commit()

    report = collect_garbage(reopen(pool))
    assert report.bytes_freed > 0 and report.waiting_for == []
    assert set(data_blobs(pool)) == referenced(pool) >= set1_pack
    assert read_back(reopen(pool), late) == disk.data
    assert read_back(reopen(pool), finished) == running_disk.data


def test_gc_refuses_storage_that_keeps_every_blob(moto_s3: str) -> None:
    store = S3BlobStore(
        s3_settings(
            moto_s3, new_bucket(moto_s3, object_lock=True), object_lock_mode="governance", retention_days=1
        ),
        "locked",
    )
    pool = create_pool_in(store, "dedup", chunk_size=CHUNK)
    with pytest.raises(PoolError, match=r"keeps every blob.*cannot delete anything"):
        collect_garbage(pool)


CRASH_SCRIPT = """
import sys
from pathlib import Path
from bingobackup.lifecycle.gc import collect_garbage
from bingobackup.pools import LocalDirBlobStore, open_pool_in
collect_garbage(open_pool_in(LocalDirBlobStore(Path(sys.argv[1]), "pool")))
"""


@pytest.mark.parametrize(
    "point", ["repack-packs", "repack-index", "repack-manifests", "condemned", "sweeping"]
)
def test_a_gc_killed_anywhere_leaves_the_pool_readable_and_a_rerun_finishes(
    tmp_path: Path, point: str
) -> None:
    pool = local_pool(tmp_path / "pool")
    disks = [five_chunk_disk() for _ in range(2)]
    for number, disk in enumerate(disks):
        backup(pool, f"old-{number}", disk)
    kept = {f"new-{n}": sharing_one_chunk(disk) for n, disk in enumerate(disks)}
    for set_id, disk in kept.items():
        backup(pool, set_id, disk)
    backup(pool, "gone", make_disk())
    for set_id in ("old-0", "old-1", "gone"):
        pool.delete_set(set_id)

    env = {**os.environ, CRASH_POINT_ENV: f"gc.{point}", "PYTHONPATH": str(ROOT)}
    killed = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(tmp_path / "pool")], env=env, check=False
    )
    assert killed.returncode == -9

    after_crash = reopen(pool)
    for set_id, disk in kept.items():
        assert read_back(after_crash, after_crash.load_manifest(set_id, "vol-a")) == disk.data
    report = collect_garbage(after_crash)  # the killed run's lock is recognised as dead
    assert report.waiting_for == []
    assert set(data_blobs(after_crash)) == referenced(after_crash)
    assert list(after_crash.store.list("gc/")) == [] and list(after_crash.store.list("locks/")) == []
    final = reopen(pool)
    for set_id, disk in kept.items():
        assert read_back(final, final.load_manifest(set_id, "vol-a")) == disk.data
    assert collect_garbage(final).packs_repacked == 0  # nothing sparse left


def test_backups_deletions_reads_and_gcs_in_separate_processes_lose_nothing(tmp_path: Path) -> None:
    pool = local_pool(tmp_path / "pool")
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    actors = ROOT / "tests" / "support" / "gc_actors.py"
    roles = ("backup", "delete", "gc", "read")
    running = {
        role: subprocess.Popen(
            [sys.executable, str(actors), role, str(tmp_path / "pool"), str(work)], env=env
        )
        for role in roles
    }
    assert {role: process.wait(timeout=120) for role, process in running.items()} == dict.fromkeys(roles, 0)
    done = {role: json.loads((work / f"{role}.json").read_text()) for role in roles}
    assert done["delete"]["deleted"] >= 1 and done["gc"]["runs"] >= 1 and done["read"]["checked"] >= 1

    final = collect_garbage(reopen(pool), repack_threshold=0.9)
    assert final.waiting_for == [] and final.deferred_bytes == 0
    assert set(data_blobs(pool)) == referenced(pool)
    recorded = dict(json.loads(line) for line in (work / "sets.jsonl").read_text().splitlines())
    remaining = sorted(pool.list_manifests())
    assert len(remaining) >= 2 and all(set_id in recorded for set_id, _ in remaining)
    restored = reopen(pool)
    for set_id, volume_id in remaining:
        data = read_back(restored, restored.load_manifest(set_id, volume_id))
        assert hashlib.sha256(data).hexdigest() == recorded[set_id], set_id


def test_locks_are_renewed_and_dead_or_silent_ones_are_stale(tmp_path: Path) -> None:
    store = LocalDirBlobStore(tmp_path / "pool", "pool")
    lock = PoolLock(store, "backup").acquire()
    first = [info.key for info in store.list("locks/")]
    lock.refresh()  # object storage cannot replace a blob: the next number, the old one deleted
    assert [info.key for info in store.list("locks/")] != first and len(list(store.list("locks/"))) == 1
    assert [live.lock_id for live in live_locks(store)] == [lock.lock_id]
    # One hour later without a refresh (its host lost, say), the lock no longer counts.
    assert (
        live_locks(store, now=time.time() + 3600) == [] and remove_stale_locks(store, time.time() + 3600) == 1
    )
    assert list(store.list("locks/")) == []
    lock.release()

    # A process killed on this host leaves a lock that is stale at once.
    dead = subprocess.run(
        [sys.executable, "-c", LOCK_AND_DIE, str(tmp_path / "pool")],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert dead.returncode == -9 and len(read_locks(store)) == 1 and live_locks(store) == []


LOCK_AND_DIE = """
import os, signal, sys
from pathlib import Path
from bingobackup.pools import LocalDirBlobStore
from bingobackup.pools.locks import PoolLock
PoolLock(LocalDirBlobStore(Path(sys.argv[1]), "pool"), "backup").acquire()
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_backup_whose_lock_went_stale_commits_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = local_pool(tmp_path / "pool")
    disk = make_disk()
    writer = pool.open_disk_writer("set-1", "vol-a", len(disk.data))
    for offset, data in disk.chunks():
        writer.put_chunk(offset, data)
    monkeypatch.setattr(locks, "STALE_SECONDS", 0.0)  # as if the storage refused every renewal
    with pytest.raises(PoolError, match=r"lock was last renewed .* nothing was committed"):
        writer.commit()
    assert list(pool.list_manifests()) == [] and list(pool.store.list("locks/")) == []


def test_gc_removes_the_temp_files_of_killed_writers_of_this_host_only(tmp_path: Path) -> None:
    """Found by the crash harness (tests/reliability): a backup killed while writing a blob
    left its temp file in the pool for good (invisible to listings, so to GC too)."""
    from bingobackup.storage.localdir import _space_tag

    pool = local_pool(tmp_path / "pool")
    disk = five_chunk_disk()
    backup(pool, "kept", disk)
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # its process id now names no process
    data = tmp_path / "pool" / "data"
    killed = data / f".tmp-pack-{_space_tag()}.{ended.pid}-0123456789ab"
    running = data / f".tmp-pack-{_space_tag()}.{os.getpid()}-0123456789ab"
    other_host = data / f".tmp-pack-00000000.{ended.pid}-0123456789ab"
    for path in (killed, running, other_host):
        path.write_bytes(b"x" * 1000)

    report = collect_garbage(pool)

    assert not killed.exists() and running.exists() and other_host.exists()
    assert "removed 1 temporary file(s) of killed writers (1000 bytes)" in report.notes, report.notes
    assert read_back(reopen(pool), reopen(pool).load_manifest("kept", "vol-a")) == disk.data
