"""Dedup pools of format version 2 keep chunks in packs (docs/format.md, pools/packs.py): a pack
describes itself, packs close at their target size, a damaged pack index is named, and a
pack whose write failed is written again without losing a chunk."""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import blake3
import pytest
from support.pools import CHUNK, FAST_SCRYPT_N, PASSPHRASE, make_disk, read_back, write_disk

from bingobackup.format.constants import DEDUP_PACK_HEADER as PACK_HEADER
from bingobackup.format.constants import PACKED_FORMAT
from bingobackup.format.errors import FormatError
from bingobackup.format.manifest import ChunkRef
from bingobackup.lifecycle.gc import collect_garbage
from bingobackup.pools import create_pool_in, dedup, open_pool, open_pool_in, packs
from bingobackup.pools.dedup import DedupPool
from bingobackup.pools.packs import (
    PackEntry,
    PackRecord,
    decode_index_blob,
    encode_index_blob,
    list_index_blobs,
    list_packs,
    read_pack_index,
)
from bingobackup.storage.base import BlobInfo
from bingobackup.storage.errors import PoolFullError
from bingobackup.storage.localdir import LocalDirBlobStore
from bingobackup.storage.testing.cases import temp_files
from bingobackup.storage.testing.faulty import FaultyBlobStore


def dedup_pool(store: FaultyBlobStore) -> DedupPool:
    pool = create_pool_in(
        store, "dedup", chunk_size=CHUNK, encrypted=True, passphrase=PASSPHRASE, scrypt_n=FAST_SCRYPT_N
    )
    assert isinstance(pool, DedupPool) and pool.config.format_version >= PACKED_FORMAT
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


class ReadRecordingStore(LocalDirBlobStore):
    """Counts reads of packs; with `hold_first`, holds the first until a second one starts (or
    10 s pass) to record whether they overlapped: on object storage each is a round trip."""

    def __init__(self, root: Path, *, hold_first: bool = False) -> None:
        super().__init__(root, "pool")
        self.hold_first = hold_first
        self.second_read = threading.Event()
        self.overlapped = False
        self.pack_reads = 0
        self._lock = threading.Lock()

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        if key.startswith("data/"):
            with self._lock:
                self.pack_reads += 1
                first = self.pack_reads == 1
            if first and self.hold_first:
                self.overlapped = self.second_read.wait(timeout=10)
            else:
                self.second_read.set()
        return super().get(key, offset, length)


def pool_of_many_packs(
    root: Path, monkeypatch: pytest.MonkeyPatch, disks: int = 3
) -> tuple[DedupPool, dict[str, str]]:
    """A pool of 2-chunk packs written by `disks` commits; (pool, chunk id → location)."""
    monkeypatch.setattr(packs, "PACK_TARGET_BYTES", 2 * CHUNK)
    pool = dedup_pool(FaultyBlobStore(root, "pool"))
    for i in range(disks):
        disk = make_disk()
        write_disk(pool.open_disk_writer("set-1", f"vol-{i}", len(disk.data)), disk)
    infos = list(list_packs(pool.store))
    assert len(infos) >= disks  # each commit closes at least one
    return pool, {
        e.digest: f"{info.key}@{e.offset}" for info in infos for e in read_pack_index(pool.store, info)
    }


def locations(pool: DedupPool, chunk_ids: Iterable[str]) -> dict[str, str | None]:
    found = {digest: pool.index.lookup(digest) for digest in chunk_ids}
    return {digest: known[1] if known else None for digest, known in found.items()}


Store = TypeVar("Store", bound=LocalDirBlobStore)


def reopened(store: Store, where: dict[str, str]) -> Store:
    """Opens the pool in `store` as a new process would and checks it finds every chunk where
    it is; returns the store."""
    pool = open_pool_in(store, PASSPHRASE)
    assert isinstance(pool, DedupPool) and locations(pool, where) == where
    return store


def pool_with_its_index_blob_rewritten(
    root: Path, monkeypatch: pytest.MonkeyPatch, rewrite: Callable[[bytes], bytes]
) -> tuple[BlobInfo, dict[str, str]]:
    """A one-disk pool whose index blob `rewrite` replaced; (that blob, chunk id → location)."""
    _, where = pool_of_many_packs(root, monkeypatch, disks=1)
    blob = next(list_index_blobs(LocalDirBlobStore(root, "pool")))
    path = root / blob.key
    path.write_bytes(rewrite(path.read_bytes()))
    return blob, where


def test_each_commit_writes_an_index_blob_and_a_new_process_reads_no_pack_for_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, where = pool_of_many_packs(tmp_path / "pool", monkeypatch)

    blobs = list(list_index_blobs(LocalDirBlobStore(tmp_path / "pool", "pool")))
    assert len(blobs) == 3  # one per disk commit
    assert reopened(ReadRecordingStore(tmp_path / "pool"), where).pack_reads == 0


def test_packs_no_index_blob_describes_are_read_from_their_tails_side_by_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool, where = pool_of_many_packs(tmp_path / "pool", monkeypatch)
    for blob in list(list_index_blobs(pool.store)):  # as a pool written before index blobs
        pool.store.delete(blob.key)

    store = reopened(ReadRecordingStore(tmp_path / "pool", hold_first=True), where)
    assert store.overlapped, "pack indexes were read one at a time"
    assert list(list_index_blobs(store)) == []  # a few packs none describes: below the merge threshold


def test_a_pool_with_many_packs_no_index_blob_describes_gets_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool, where = pool_of_many_packs(tmp_path / "pool", monkeypatch)
    for blob in list(list_index_blobs(pool.store)):
        pool.store.delete(blob.key)
    monkeypatch.setattr(dedup, "MAX_UNINDEXED_PACKS", 2)

    assert len(list(list_index_blobs(reopened(ReadRecordingStore(tmp_path / "pool"), where)))) == 1
    assert reopened(ReadRecordingStore(tmp_path / "pool"), where).pack_reads == 0


def test_a_load_merges_many_index_blobs_into_one_unless_the_storage_keeps_every_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, where = pool_of_many_packs(tmp_path / "pool", monkeypatch, disks=4)
    monkeypatch.setattr(dedup, "MAX_INDEX_BLOBS", 2)

    monkeypatch.setattr(LocalDirBlobStore, "keeps_every_blob", property(lambda self: True))
    kept = reopened(LocalDirBlobStore(tmp_path / "pool", "pool"), where)
    assert len(list(list_index_blobs(kept))) == 4  # nothing deleted, nothing added
    monkeypatch.undo()
    monkeypatch.setattr(dedup, "MAX_INDEX_BLOBS", 2)

    merging = reopened(LocalDirBlobStore(tmp_path / "pool", "pool"), where)
    assert len(list(list_index_blobs(merging))) == 1
    assert reopened(ReadRecordingStore(tmp_path / "pool"), where).pack_reads == 0


def test_a_damaged_index_blob_is_named_and_its_packs_are_read_from_their_tails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def flip_a_pack_id_bit(data: bytes) -> bytes:  # the checksum no longer matches
        return data[:20] + bytes([data[20] ^ 0x01]) + data[21:]

    blob, where = pool_with_its_index_blob_rewritten(tmp_path / "pool", monkeypatch, flip_a_pack_id_bit)

    with caplog.at_level(logging.WARNING, logger="bingobackup.pools"):
        store = reopened(ReadRecordingStore(tmp_path / "pool"), where)
    assert store.pack_reads == len(list(list_packs(store)))  # each pack's own index, once
    assert f"index blob {blob.key} is damaged (its checksum does not match" in caplog.text
    assert "Move the file out of the pool" in caplog.text


def test_an_index_blob_of_a_newer_version_is_not_guessed_at_and_says_to_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def as_version_2(data: bytes) -> bytes:  # with a valid checksum
        body = b"BBINDX" + (2).to_bytes(2, "big") + data[8:-32]
        return body + blake3.blake3(body).digest()

    blob, where = pool_with_its_index_blob_rewritten(tmp_path / "pool", monkeypatch, as_version_2)

    with caplog.at_level(logging.WARNING, logger="bingobackup.pools"):
        store = reopened(ReadRecordingStore(tmp_path / "pool"), where)
    assert store.pack_reads == len(list(list_packs(store)))
    assert f"index blob {blob.key} has version 2, which this bingobackup does not read" in caplog.text
    assert "Upgrade bingobackup" in caplog.text


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (PackEntry("ab" * 32, 2, 10), "points outside its pack"),
        (PackEntry("ab" * 32, 8, 10_000), "points outside"),
    ],
    ids=["inside the pack header", "past the pack's index"],
)
def test_an_index_blob_entry_outside_its_pack_is_refused(
    tmp_path: Path, entry: PackEntry, reason: str
) -> None:
    store = LocalDirBlobStore(tmp_path / "pool", "pool")
    data = encode_index_blob([PackRecord("data/ab/ab" + "0" * 30, 8 + 100 + 44 + 12, (entry,))])
    with pytest.raises(FormatError, match=rf"index blob index/x is damaged \(an entry {reason}"):
        decode_index_blob(store, "index/x", data)


def test_index_records_of_packs_garbage_collection_deleted_are_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packs, "PACK_TARGET_BYTES", 2 * CHUNK)
    pool = dedup_pool(FaultyBlobStore(tmp_path / "pool", "pool"))
    kept_disk, gone_disk = make_disk(), make_disk()
    kept = write_disk(pool.open_disk_writer("set-1", "vol-a", len(kept_disk.data)), kept_disk)
    gone = write_disk(pool.open_disk_writer("set-2", "vol-a", len(gone_disk.data)), gone_disk)
    pool.delete_set("set-2")
    assert collect_garbage(pool, repack=False).bytes_freed > 0

    again = open_pool_in(LocalDirBlobStore(tmp_path / "pool", "pool"), PASSPHRASE)
    assert isinstance(again, DedupPool)
    only_gone = {r.digest for r in gone.chunks} - {r.digest for r in kept.chunks}
    assert only_gone and all(again.index.lookup(digest) is None for digest in only_gone)
    assert read_back(again, kept) == kept_disk.data


def test_a_failed_index_blob_write_does_not_fail_the_backup_and_the_next_commit_writes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = FaultyBlobStore(tmp_path / "pool", "pool")
    pool = dedup_pool(store)
    real_put = store.put

    def refuse_index_blobs(key: str, data: object) -> None:
        if key.startswith("index/"):
            raise PoolFullError(f"pool {store.name} is full")
        real_put(key, data)  # type: ignore[arg-type]

    first, second = make_disk(), make_disk()
    monkeypatch.setattr(store, "put", refuse_index_blobs)
    with caplog.at_level(logging.WARNING, logger="bingobackup.pools"):
        written = write_disk(pool.open_disk_writer("set-1", "vol-a", len(first.data)), first)
    assert "the index blob of" in caplog.text and list(list_index_blobs(store)) == []
    monkeypatch.undo()
    write_disk(pool.open_disk_writer("set-1", "vol-b", len(second.data)), second)

    (blob,) = list(list_index_blobs(store))
    described = {r.key for r in decode_index_blob(store, blob.key, store.get(blob.key))}
    assert described == {info.key for info in list_packs(store)}  # both commits' packs
    assert read_back(pool, written) == first.data


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
