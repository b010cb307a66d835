"""The processes of the concurrent garbage-collection test: `python gc_actors.py ROLE POOL_DIR WORK_DIR`.

backup: backs up a changing disk as sets set-000, set-001, ... and records each one's SHA-256.
delete: deletes the oldest set while more than two exist, until the backups are done.
gc:     collects garbage with repack (threshold 90 %, so most packs qualify), until done.
read:   reads back recorded sets and checks their SHA-256, until done; a read may fail only
        because its set was deleted meanwhile.
Each writes `<role>.json` with what it did; the backup starts once the others announced
themselves (`ready-<role>`) and writes `done` at its end.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import threading
from pathlib import Path

from bingobackup.lifecycle.gc import collect_garbage
from bingobackup.pools import LocalDirBlobStore, Pool, PoolError, open_pool_in

CHUNK = 64 * 1024
CHUNKS_PER_DISK = 8
SETS = 30
PACE_SECONDS = 0.02  # pacing between the loops' rounds, not synchronisation


def open_it(pool_dir: Path) -> Pool:
    return open_pool_in(LocalDirBlobStore(pool_dir, "pool"))


def records(work: Path) -> dict[str, str]:
    path = work / "sets.jsonl"
    if not path.exists():
        return {}
    lines = path.read_text().splitlines()
    return dict(json.loads(line) for line in lines if line.endswith("]"))


def run_backup(pool: Pool, work: Path) -> dict[str, int]:
    # Starts once the other actors run (each announces itself), so they meet every backup.
    while not all((work / f"ready-{role}").exists() for role in ("delete", "gc", "read")):
        threading.Event().wait(PACE_SECONDS)
    disk = bytearray(os.urandom(CHUNKS_PER_DISK * CHUNK))
    rng = random.Random(7)
    for number in range(SETS):
        for index in rng.sample(range(CHUNKS_PER_DISK), 2):  # two chunks change per set
            disk[index * CHUNK : (index + 1) * CHUNK] = os.urandom(CHUNK)
        set_id = f"set-{number:03d}"
        writer = pool.open_disk_writer(set_id, "vol-a", len(disk))
        for offset in range(0, len(disk), CHUNK):
            data = bytes(disk[offset : offset + CHUNK])
            digest = writer.chunk_digest(data)
            if writer.has(digest):
                writer.add_known(offset, len(data), digest)
            else:
                writer.put_chunk(offset, data, digest=digest)
        writer.commit()
        with (work / "sets.jsonl").open("a") as out:
            out.write(json.dumps([set_id, hashlib.sha256(disk).hexdigest()]) + "\n")
    (work / "done").touch()
    return {"sets": SETS}


def run_delete(pool: Pool, work: Path) -> dict[str, int]:
    deleted = 0
    while not (work / "done").exists():
        sets = sorted({set_id for set_id, _ in pool.list_manifests()})
        if len(sets) > 2:
            pool.delete_set(sets[0])
            deleted += 1
        threading.Event().wait(PACE_SECONDS)
    return {"deleted": deleted}


def run_gc(pool: Pool, work: Path) -> dict[str, int]:
    totals = {"runs": 0, "bytes_freed": 0, "packs_repacked": 0, "deferred": 0}
    while not (work / "done").exists():
        report = collect_garbage(pool, repack_threshold=0.9)
        totals["runs"] += 1
        totals["bytes_freed"] += report.bytes_freed
        totals["packs_repacked"] += report.packs_repacked
        totals["deferred"] += bool(report.deferred_bytes)
    return totals


def run_read(pool: Pool, work: Path) -> dict[str, int]:
    checked = 0
    while not (work / "done").exists():
        for set_id, sha in records(work).items():
            try:
                manifest = pool.load_manifest(set_id, "vol-a")
                out = bytearray(manifest.size_bytes)
                for ref, plaintext in pool.iter_disk(manifest):
                    out[ref.offset : ref.offset + ref.length] = plaintext
            except PoolError:
                if (set_id, "vol-a") in set(pool.list_manifests()):
                    raise  # the set still exists: it should have been readable
                continue
            if hashlib.sha256(out).hexdigest() != sha:
                raise AssertionError(f"{set_id} read back with other bytes")
            checked += 1
    return {"checked": checked}


if __name__ == "__main__":
    role, pool_dir, work_dir = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    actor = {"backup": run_backup, "delete": run_delete, "gc": run_gc, "read": run_read}[role]
    pool = open_it(pool_dir)
    (work_dir / f"ready-{role}").touch()
    result = actor(pool, work_dir)
    (work_dir / f"{role}.json").write_text(json.dumps(result))
