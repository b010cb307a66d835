"""Chunk-level rules every pool kind keeps, run over each kind with and without encryption
and compression: bytes come back equal, damage is detected, keys are checked first."""

from __future__ import annotations

import errno
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from faulty_store import FaultyBlobStore
from pool_support import (
    CHUNK,
    FAST_SCRYPT_N,
    PASSPHRASE,
    VARIANTS,
    Variant,
    make_disk,
    read_back,
    temp_files,
    tree_snapshot,
    write_disk,
)

from bingobackup.format.envelope import HEADER_BYTES, TAG_BYTES
from bingobackup.format.errors import CorruptChunkError, PassphraseRequiredError, WrongPassphraseError
from bingobackup.format.manifest import ChunkRef
from bingobackup.pools import Pool, PoolFullError, create_pool_in, open_pool
from bingobackup.pools.standard import PACK_HEADER
from bingobackup.pools.writer import ZERO_LOCATION

ENCRYPTED = [v for v in VARIANTS if v.encrypted]


def reopen(variant: Variant, pool_dir: Path) -> Pool:
    return open_pool(pool_dir, variant.passphrase)


def stored_file(pool_dir: Path, ref: ChunkRef) -> tuple[Path, int]:
    """The file holding a chunk's envelope and the envelope's offset in it."""
    key, _, offset = ref.location.partition("@")
    return pool_dir / key, int(offset or 0)


def test_disk_round_trips_through_a_reopened_pool(variant: Variant, pool: Pool, pool_dir: Path) -> None:
    disk = make_disk()
    manifest = write_disk(pool.open_disk_writer("set-1", "vol-a", len(disk.data)), disk)

    assert [c.offset for c in manifest.chunks] == [
        0,
        CHUNK,
        3 * CHUNK,
        4 * CHUNK,
        5 * CHUNK,
    ]  # zero chunk absent
    reopened = reopen(variant, pool_dir)
    loaded = reopened.load_manifest("set-1", "vol-a")
    assert loaded == manifest
    assert hashlib.sha256(read_back(reopened, loaded)).hexdigest() == disk.sha256
    assert list(reopened.list_manifests()) == [("set-1", "vol-a")]
    assert temp_files(pool_dir) == []


def test_counters_for_agent_and_server_side_dedup(variant: Variant, pool: Pool) -> None:
    disk = make_disk()
    data_bytes = len(disk.data) - CHUNK  # everything but the zero chunk
    first = pool.open_disk_writer("set-1", "vol-a", len(disk.data))
    manifest = write_disk(first, disk, mode="agent", threads=1)
    stats = first.stats()
    assert stats.bytes_read == len(disk.data) and stats.zero_bytes == CHUNK
    if variant.kind == "dedup":  # the repeated chunk was known by the time it came
        assert stats.bytes_sent == data_bytes - CHUNK and stats.chunks_stored == 4
    else:
        assert stats.bytes_sent == data_bytes and stats.chunks_stored == 5
    unique = {r.digest: r.stored_size for r in manifest.chunks}
    kept = sum(unique.values()) if variant.kind == "dedup" else sum(r.stored_size for r in manifest.chunks)
    assert stats.bytes_stored == kept

    again_agent = pool.open_disk_writer("set-2", "vol-a", len(disk.data))
    write_disk(again_agent, disk, mode="agent")
    again_server = pool.open_disk_writer("set-3", "vol-a", len(disk.data))
    write_disk(again_server, disk, mode="server")
    agent, server = again_agent.stats(), again_server.stats()
    assert server.bytes_sent == data_bytes  # server-side: every chunk crosses
    if variant.kind == "dedup":
        assert agent.bytes_sent == 0 and agent.bytes_stored == 0  # agent-side: nothing crosses
        assert server.bytes_stored == 0  # ... and the pool drops the duplicates
    else:  # a standard pool keeps every backup on its own
        assert agent.bytes_sent == data_bytes and agent.bytes_stored == stats.bytes_stored
        assert server.bytes_stored == stats.bytes_stored


def test_a_damaged_byte_is_detected_naming_chunk_and_location(
    variant: Variant, pool: Pool, pool_dir: Path
) -> None:
    disk = make_disk()
    manifest = write_disk(pool.open_disk_writer("set-1", "vol-a", len(disk.data)), disk)
    victim = manifest.chunks[1]
    path, start = stored_file(pool_dir, victim)
    raw = bytearray(path.read_bytes())
    raw[start + HEADER_BYTES + 7] ^= 0x01  # one payload bit
    path.write_bytes(bytes(raw))

    reopened = reopen(variant, pool_dir)
    with pytest.raises(CorruptChunkError) as caught:
        reopened.read_chunk(victim)
    message = str(caught.value)
    assert victim.digest in message and victim.location in message and "damaged" in message
    assert reopened.read_chunk(manifest.chunks[0]) == disk.data[:CHUNK]  # the others still read


def test_an_altered_header_is_detected(variant: Variant, pool: Pool, pool_dir: Path) -> None:
    disk = make_disk()
    manifest = write_disk(pool.open_disk_writer("set-1", "vol-a", len(disk.data)), disk)
    victim = manifest.chunks[0]
    path, start = stored_file(pool_dir, victim)
    raw = bytearray(path.read_bytes())
    raw[start + 8] ^= 0x01  # plaintext length
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptChunkError, match=victim.digest):
        reopen(variant, pool_dir).read_chunk(victim)


def test_incompressible_chunks_are_stored_raw_and_text_shrinks(variant: Variant, pool: Pool) -> None:
    disk = make_disk()
    writer = pool.open_disk_writer("set-1", "vol-a", len(disk.data))
    random_ref = writer.put_chunk(0, disk.data[:CHUNK])
    text_ref = writer.put_chunk(CHUNK, disk.data[CHUNK : 2 * CHUNK])
    writer.abort()
    overhead = HEADER_BYTES + (TAG_BYTES if variant.encrypted else 0)
    assert random_ref.stored_size == CHUNK + overhead
    if variant.compression == "fast":
        assert text_ref.stored_size < CHUNK // 10
    else:
        assert text_ref.stored_size == CHUNK + overhead


def chunk_bytes(pool: Pool) -> int:
    """Bytes the pool holds for chunks: dedup chunk blobs, standard packs past their header."""
    dedup = sum(i.size for i in pool.store.list("chunks/"))
    return dedup + sum(i.size - len(PACK_HEADER) for i in pool.store.list("packs/"))


def test_zero_chunks_are_stored_as_nothing(pool: Pool, pool_dir: Path) -> None:
    writer = pool.open_disk_writer("set-1", "vol-z", 2 * CHUNK)
    ref = writer.put_chunk(0, bytes(CHUNK))
    assert ref.location == ZERO_LOCATION and ref.stored_size == 0
    assert pool.read_chunk(ref) == bytes(CHUNK)
    manifest = writer.commit()
    assert manifest.chunks == () and writer.bytes_stored == 0
    assert chunk_bytes(pool) == 0
    assert list(pool.list_manifests()) == [("set-1", "vol-z")]


def test_concurrent_puts_of_one_new_chunk_store_it_once(variant: Variant, pool: Pool) -> None:
    chunk = os.urandom(CHUNK)
    writer = pool.open_disk_writer("set-1", "vol-a", 16 * CHUNK)
    with ThreadPoolExecutor(8) as executor:
        list(executor.map(lambda i: writer.put_chunk(i * CHUNK, chunk, mode="server"), range(16)))
    stats = writer.stats()
    assert stats.bytes_sent == 16 * CHUNK
    assert stats.chunks_stored == (1 if variant.kind == "dedup" else 16)
    manifest = writer.commit()
    assert len({r.digest for r in manifest.chunks}) == 1


@pytest.mark.parametrize("variant", ENCRYPTED, ids=[v.id for v in ENCRYPTED])
def test_wrong_passphrase_fails_before_anything_is_touched(
    variant: Variant, pool: Pool, pool_dir: Path
) -> None:
    disk = make_disk()
    write_disk(pool.open_disk_writer("set-1", "vol-a", len(disk.data)), disk)
    before = tree_snapshot(pool_dir)
    with pytest.raises(WrongPassphraseError) as caught:
        open_pool(pool_dir, "not the passphrase")
    assert "does not open pool pool" in str(caught.value) and "nothing was read or written" in str(
        caught.value
    )
    assert "not the passphrase" not in str(caught.value) and PASSPHRASE not in repr(pool)
    with pytest.raises(PassphraseRequiredError, match="is encrypted and no passphrase was given"):
        open_pool(pool_dir)
    assert tree_snapshot(pool_dir) == before


def test_pool_full_aborts_cleanly(variant: Variant, tmp_path: Path) -> None:
    store = FaultyBlobStore(tmp_path / "full", "full-pool")
    pool = create_pool_in(
        store,
        variant.kind,  # type: ignore[arg-type]
        chunk_size=CHUNK,
        encrypted=variant.encrypted,
        passphrase=variant.passphrase,
        compression=variant.compression,  # type: ignore[arg-type]
        scrypt_n=FAST_SCRYPT_N,
    )
    disk = make_disk()
    writer = pool.open_disk_writer("set-1", "vol-a", len(disk.data))
    writer.put_chunk(0, disk.data[:CHUNK])
    store.fail_with(errno.ENOSPC)
    with pytest.raises(PoolFullError, match="pool full-pool is full"):
        writer.put_chunk(CHUNK, disk.data[CHUNK : 2 * CHUNK])
    writer.abort()
    assert list(pool.list_manifests()) == []
    assert not any(info.key.startswith("packs/") for info in store.list(""))
    assert temp_files(store.root) == []
