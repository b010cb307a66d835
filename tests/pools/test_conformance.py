"""Chunk-level rules every pool kind keeps, run over each kind with and without encryption
and compression: bytes come back equal, damage is detected, keys are checked first."""

from __future__ import annotations

import errno
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from backends import StoreCase
from pool_support import (
    CHUNK,
    ENCRYPTED_COMBOS,
    PASSPHRASE,
    Variant,
    combo_id,
    make_disk,
    read_back,
    write_disk,
)

from bingobackup.format.envelope import HEADER_BYTES, TAG_BYTES
from bingobackup.format.errors import CorruptChunkError, PassphraseRequiredError, WrongPassphraseError
from bingobackup.format.manifest import ChunkRef
from bingobackup.pools import Pool, PoolFullError, open_pool_in
from bingobackup.pools.standard import PACK_HEADER
from bingobackup.pools.writer import ZERO_LOCATION


def reopen(variant: Variant, case: StoreCase) -> Pool:
    return open_pool_in(case.fresh_store(), variant.passphrase)


def damage(case: StoreCase, ref: ChunkRef, at: int) -> None:
    """Flips one bit `at` bytes into the chunk's envelope, behind the pool's back."""
    key, _, offset = ref.location.partition("@")
    raw = bytearray(case.read_raw(key))
    raw[int(offset or 0) + at] ^= 0x01
    case.write_raw(key, bytes(raw))


def test_disk_round_trips_through_a_reopened_pool(variant: Variant, pool: Pool, case: StoreCase) -> None:
    disk = make_disk()
    manifest = write_disk(pool.open_disk_writer("set-1", "vol-a", len(disk.data)), disk)

    assert [c.offset for c in manifest.chunks] == [
        0,
        CHUNK,
        3 * CHUNK,
        4 * CHUNK,
        5 * CHUNK,
    ]  # zero chunk absent
    reopened = reopen(variant, case)
    loaded = reopened.load_manifest("set-1", "vol-a")
    assert loaded == manifest
    assert hashlib.sha256(read_back(reopened, loaded)).hexdigest() == disk.sha256
    assert list(reopened.list_manifests()) == [("set-1", "vol-a")]
    assert case.leftovers() == []


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
    variant: Variant, pool: Pool, case: StoreCase
) -> None:
    disk = make_disk()
    manifest = write_disk(pool.open_disk_writer("set-1", "vol-a", len(disk.data)), disk)
    victim = manifest.chunks[1]
    damage(case, victim, HEADER_BYTES + 7)  # one payload bit

    reopened = reopen(variant, case)
    with pytest.raises(CorruptChunkError) as caught:
        reopened.read_chunk(victim)
    message = str(caught.value)
    assert victim.digest in message and victim.location in message and "damaged" in message
    assert reopened.read_chunk(manifest.chunks[0]) == disk.data[:CHUNK]  # the others still read


def test_an_altered_header_is_detected(variant: Variant, pool: Pool, case: StoreCase) -> None:
    disk = make_disk()
    manifest = write_disk(pool.open_disk_writer("set-1", "vol-a", len(disk.data)), disk)
    victim = manifest.chunks[0]
    damage(case, victim, 8)  # plaintext length
    with pytest.raises(CorruptChunkError, match=victim.digest):
        reopen(variant, case).read_chunk(victim)


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


def test_zero_chunks_are_stored_as_nothing(pool: Pool) -> None:
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


@pytest.mark.parametrize("combo", ENCRYPTED_COMBOS, ids=combo_id, indirect=True)
def test_wrong_passphrase_fails_before_anything_is_touched(
    variant: Variant, pool: Pool, case: StoreCase
) -> None:
    disk = make_disk()
    write_disk(pool.open_disk_writer("set-1", "vol-a", len(disk.data)), disk)
    before = case.snapshot()
    with pytest.raises(WrongPassphraseError) as caught:
        open_pool_in(case.fresh_store(), "not the passphrase")
    assert "does not open pool pool" in str(caught.value) and "nothing was read or written" in str(
        caught.value
    )
    assert "not the passphrase" not in str(caught.value) and PASSPHRASE not in repr(pool)
    with pytest.raises(PassphraseRequiredError, match="is encrypted and no passphrase was given"):
        open_pool_in(case.fresh_store())
    assert case.snapshot() == before


def test_pool_full_aborts_cleanly(variant: Variant, pool: Pool, case: StoreCase) -> None:
    store = case.store
    earlier = make_disk()
    kept = write_disk(pool.open_disk_writer("set-0", "vol-a", len(earlier.data)), earlier)
    disk = make_disk()
    writer = pool.open_disk_writer("set-1", "vol-a", len(disk.data))
    writer.put_chunk(0, disk.data[:CHUNK])
    case.fail_with(errno.ENOSPC)
    with pytest.raises(PoolFullError, match="pool pool is full"):
        for offset, data in disk.chunks()[1:]:  # an object store may buffer a pack up to a part
            writer.put_chunk(offset, data)
        writer.commit()
    writer.abort()
    case.fail_with(None)
    assert list(pool.list_manifests()) == [("set-0", "vol-a")]
    assert {i.key for i in store.list("packs/")} <= {"packs/set-0/vol-a.pack"}
    assert case.leftovers() == []
    assert hashlib.sha256(read_back(reopen(variant, case), kept)).hexdigest() == earlier.sha256
