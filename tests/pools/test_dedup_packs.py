"""Dedup pools of format version 2 keep chunks in packs (docs/format.md, pools/packs.py): a pack
describes itself, packs close at their target size, a damaged pack index is named, and a
pack whose write failed is written again without losing a chunk."""

from __future__ import annotations

import errno
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from faulty_store import FaultyBlobStore
from pool_support import CHUNK, FAST_SCRYPT_N, PASSPHRASE, make_disk, read_back, temp_files, write_disk

from bingobackup.format.errors import FormatError
from bingobackup.format.manifest import ChunkRef
from bingobackup.pools import create_pool_in, open_pool, open_pool_in, packs
from bingobackup.pools.base import BlobInfo
from bingobackup.pools.dedup import DedupPool
from bingobackup.pools.localdir import LocalDirBlobStore
from bingobackup.pools.packs import PACK_HEADER, list_packs, read_pack_index


def dedup_pool(store: FaultyBlobStore) -> DedupPool:
    pool = create_pool_in(
        store, "dedup", chunk_size=CHUNK, encrypted=True, passphrase=PASSPHRASE, scrypt_n=FAST_SCRYPT_N
    )
    assert isinstance(pool, DedupPool) and pool.config.format_version == 2
    return pool


def test_a_pack_holds_its_own_index_and_a_new_process_finds_every_chunk(tmp_path: Path) -> None:
    pool = dedup_pool(FaultyBlobStore(tmp_path / "pool", "pool"))
    disk = make_disk()
    manifest = write_disk(pool.open_disk_writer("set-1", "vol-a", len(disk.data)), disk)

    infos = list(list_packs(pool.store))  # one per writer thread that held a pack at the commit
    assert 1 <= len(infos) <= 4 and list(pool.store.list("chunks/")) == []
    for info in infos:
        assert info.key.startswith("data/") and (tmp_path / "pool" / info.key).read_bytes()[:8] == PACK_HEADER
    indexed = {
        (e.digest, f"{info.key}@{e.offset}", e.length)
        for info in infos
        for e in read_pack_index(pool.store, info)
    }
    assert indexed == {(r.digest, r.location, r.stored_size) for r in manifest.chunks}

    again = open_pool(tmp_path / "pool", PASSPHRASE)  # another process: knows the pool only from disk
    writer = again.open_disk_writer("set-2", "vol-a", len(disk.data))
    assert all(writer.has(ref.digest) for ref in manifest.chunks)
    second = write_disk(writer, disk)
    assert writer.stats().chunks_stored == 0 and set(list_packs(again.store)) == set(infos)
    assert read_back(again, second) == disk.data


def test_packs_close_at_their_target_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packs, "PACK_TARGET_BYTES", 3 * CHUNK)
    pool = dedup_pool(FaultyBlobStore(tmp_path / "pool", "pool"))
    disks = [make_disk() for _ in range(4)]
    manifests = [
        write_disk(pool.open_disk_writer("set-1", f"vol-{i}", len(d.data)), d) for i, d in enumerate(disks)
    ]

    infos = list(list_packs(pool.store))
    assert len(infos) >= 4
    # A pack closes at the chunk that reaches the target, so none is much larger.
    assert all(info.size <= 4 * CHUNK + 4096 for info in infos)
    entries = [e.digest for info in infos for e in read_pack_index(pool.store, info)]
    assert len(entries) == len(set(entries)) == len({r.digest for m in manifests for r in m.chunks})
    assert [read_back(pool, m) for m in manifests] == [d.data for d in disks]


class OverlapRecordingStore(LocalDirBlobStore):
    """Holds the first pack read until a second one starts (or 10 s pass), and records whether
    pack reads overlapped: on object storage each is a round trip."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, "pool")
        self.second_read = threading.Event()
        self.overlapped = False
        self._reads = 0
        self._lock = threading.Lock()

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        if key.startswith("data/"):
            with self._lock:
                self._reads += 1
                first = self._reads == 1
            if first:
                self.overlapped = self.second_read.wait(timeout=10)
            else:
                self.second_read.set()
        return super().get(key, offset, length)


def test_the_index_reads_pack_indexes_side_by_side_and_finds_what_one_by_one_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packs, "PACK_TARGET_BYTES", 2 * CHUNK)
    pool = dedup_pool(FaultyBlobStore(tmp_path / "pool", "pool"))
    disks = [make_disk() for _ in range(3)]
    manifests = [
        write_disk(pool.open_disk_writer("set-1", f"vol-{i}", len(d.data)), d) for i, d in enumerate(disks)
    ]
    infos: list[BlobInfo] = list(list_packs(pool.store))
    assert len(infos) >= 6
    one_by_one = {
        e.digest: f"{info.key}@{e.offset}" for info in infos for e in read_pack_index(pool.store, info)
    }

    store = OverlapRecordingStore(tmp_path / "pool")
    again = open_pool_in(store, PASSPHRASE)
    assert isinstance(again, DedupPool)
    assert {digest: again.index.lookup(digest) for digest in one_by_one} == {
        digest: (next(r.stored_size for m in manifests for r in m.chunks if r.digest == digest), location)
        for digest, location in one_by_one.items()
    }
    assert store.overlapped, "pack indexes were read one at a time"


def test_a_damaged_pack_index_is_named_with_what_to_do(tmp_path: Path) -> None:
    pool = dedup_pool(FaultyBlobStore(tmp_path / "pool", "pool"))
    disk = make_disk()
    write_disk(pool.open_disk_writer("set-1", "vol-a", len(disk.data)), disk)
    info = next(list_packs(pool.store))
    path = tmp_path / "pool" / info.key
    path.write_bytes(path.read_bytes()[:-3])  # the footer cut short

    writer = open_pool(tmp_path / "pool", PASSPHRASE).open_disk_writer("set-2", "vol-a", len(disk.data))
    with pytest.raises(FormatError, match=rf"pack {info.key} is damaged .*index footer.*Move the file out"):
        writer.has("00" * 32)


def test_a_failed_pack_write_is_written_again_and_no_chunk_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packs, "PACK_TARGET_BYTES", CHUNK)  # one random chunk fills a pack
    store = FaultyBlobStore(tmp_path / "pool", "pool")
    pool = dedup_pool(store)
    disk = make_disk()
    chunks = [(o, disk.data[o : o + CHUNK]) for o in range(0, len(disk.data), CHUNK)]
    stored = [(o, c) for o, c in chunks if not pool.is_zero(c)]
    writer = pool.open_disk_writer("set-1", "vol-a", len(disk.data))

    store.fail_with(errno.EIO)
    writer.put_chunk(*stored[0])  # fills the pack: handed to the store, whose write fails
    with pytest.raises(OSError, match="Input/output error"):
        writer.settle()  # waits for it, then writes the kept pack again: still failing
    assert store.failures == 2 and list(list_packs(store)) == [] and temp_files(tmp_path / "pool") == []
    store.fail_with(None)
    for offset, chunk in stored[1:]:
        writer.put_chunk(offset, chunk)
    manifest = writer.commit()

    assert read_back(pool, manifest) == disk.data
    assert writer.stats().chunks_stored == len({pool.chunk_digest(c) for _, c in stored})
    assert temp_files(tmp_path / "pool") == []


def test_every_chunk_placed_before_a_flush_is_durable_after_it_while_others_keep_placing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disks commit while other disks of the job still write: each commit's flush must cover
    every chunk placed before it, in whichever pack and whoever is sending that pack."""
    monkeypatch.setattr(packs, "PACK_TARGET_BYTES", 3 * CHUNK)
    pool = dedup_pool(FaultyBlobStore(tmp_path / "pool", "pool"))
    assembler = pool.packs
    assert assembler is not None
    placed: list[tuple[str, str, int, bytes]] = []  # (digest, location, stored size, plaintext)
    lock = threading.Lock()

    def place_many(seed: int) -> None:
        for n in range(48):
            plain = os.urandom(CHUNK // 2) + bytes([seed, n]) * (CHUNK // 4)
            digest = pool.chunk_digest(plain)
            size, location = assembler.place(digest, plain)
            with lock:
                placed.append((digest, location, size, plain))

    def flush_and_check() -> None:
        for _ in range(40):
            with lock:
                before = list(placed)
            assembler.flush()
            durable = {info.key for info in list_packs(pool.store)}
            assert {location.partition("@")[0] for _, location, _, _ in before} <= durable

    with ThreadPoolExecutor(4) as executor:
        futures = [executor.submit(place_many, seed) for seed in range(3)] + [
            executor.submit(flush_and_check)
        ]
        for future in futures:
            future.result()
    assembler.flush()
    for digest, location, size, plain in placed:
        ref = ChunkRef(offset=0, length=len(plain), digest=digest, stored_size=size, location=location)
        assert pool.read_chunk(ref) == plain
    assert temp_files(tmp_path / "pool") == []
