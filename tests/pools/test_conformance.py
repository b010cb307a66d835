"""Chunk-level rules every pool kind keeps, run over all six kinds (support/pool_cases.py) with and
without encryption and compression: bytes come back equal, damage is detected, keys are checked
first, a full pool stops the disk and keeps what was there.

No rule is skipped for any kind. Where kinds differ by design the test asserts each side: a
dedup pool stores a repeated chunk once, while standard, tape and optical keep every backup
self-contained (a stream on sequential media cannot point back at an earlier one)."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from support.pool_cases import PoolCase
from support.pools import (
    CHUNK,
    ENCRYPTED_COMBOS,
    PASSPHRASE,
    TestDisk,
    Variant,
    combo_id,
    make_disk,
    read_back,
    write_disk,
)

from bingobackup.format.constants import ZERO_LOCATION
from bingobackup.format.envelope import HEADER_BYTES, TAG_BYTES
from bingobackup.format.errors import CorruptChunkError, PassphraseRequiredError, WrongPassphraseError
from bingobackup.pools import Pool, PoolFullError


def test_disk_round_trips_through_a_reopened_pool(variant: Variant, pool: Pool, case: PoolCase) -> None:
    disk = make_disk()
    manifest = write_disk(pool.open_disk_writer("set-1", "vol-a", len(disk.data)), disk)

    assert [c.offset for c in manifest.chunks] == [
        0,
        CHUNK,
        3 * CHUNK,
        4 * CHUNK,
        5 * CHUNK,
    ]  # zero chunk absent
    case.close_media()  # optical: the reopened pool reads the burned disc's ISO image
    reopened = case.reopen()
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
    variant: Variant, pool: Pool, case: PoolCase
) -> None:
    disk = make_disk()
    manifest = write_disk(pool.open_disk_writer("set-1", "vol-a", len(disk.data)), disk)
    victim = manifest.chunks[1]
    case.close_media()  # optical: the bit rots on the burned disc
    case.damage(victim, HEADER_BYTES + 7)  # one payload bit

    reopened = case.reopen()
    with pytest.raises(CorruptChunkError) as caught:
        reopened.read_chunk(victim)
    message = str(caught.value)
    assert victim.digest in message and victim.location in message and "damaged" in message
    assert reopened.read_chunk(manifest.chunks[0]) == disk.data[:CHUNK]  # the others still read


def test_an_altered_header_is_detected(variant: Variant, pool: Pool, case: PoolCase) -> None:
    disk = make_disk()
    manifest = write_disk(pool.open_disk_writer("set-1", "vol-a", len(disk.data)), disk)
    victim = manifest.chunks[0]
    case.damage(victim, 8)  # plaintext length (optical: on the open disc, before it is burned)
    with pytest.raises(CorruptChunkError, match=victim.digest):
        case.reopen().read_chunk(victim)


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


def test_zero_chunks_are_stored_as_nothing(pool: Pool, case: PoolCase) -> None:
    writer = pool.open_disk_writer("set-1", "vol-z", 2 * CHUNK)
    ref = writer.put_chunk(0, bytes(CHUNK))
    assert ref.location == ZERO_LOCATION and ref.stored_size == 0
    assert pool.read_chunk(ref) == bytes(CHUNK)
    manifest = writer.commit()
    assert manifest.chunks == () and writer.bytes_stored == 0
    assert case.chunk_bytes() == 0
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
    variant: Variant, pool: Pool, case: PoolCase
) -> None:
    disk = make_disk()
    write_disk(pool.open_disk_writer("set-1", "vol-a", len(disk.data)), disk)
    before = case.snapshot()
    with pytest.raises(WrongPassphraseError) as caught:
        case.open("not the passphrase")
    assert "does not open pool pool" in str(caught.value) and "nothing was read or written" in str(
        caught.value
    )
    assert "not the passphrase" not in str(caught.value) and PASSPHRASE not in repr(pool)
    with pytest.raises(PassphraseRequiredError, match="is encrypted and no passphrase was given"):
        case.open(None)
    assert case.snapshot() == before


def large_disk() -> TestDisk:
    """More than the media kinds hold (two 1 MiB cartridges or discs): random, so no compression."""
    return TestDisk(os.urandom(40 * CHUNK))


def test_pool_full_stops_the_disk_and_keeps_earlier_backups(
    variant: Variant, pool: Pool, case: PoolCase
) -> None:
    earlier = make_disk()
    kept = write_disk(pool.open_disk_writer("set-0", "vol-a", len(earlier.data)), earlier)
    disk = large_disk()
    writer = pool.open_disk_writer("set-1", "vol-a", len(disk.data))
    writer.put_chunk(0, disk.data[:CHUNK])
    case.run_out_of_room()  # disk full, quota; tape and optical: the last cartridge or disc fills
    with pytest.raises(PoolFullError, match="pool pool is full") as caught:
        for offset, data in disk.chunks()[1:]:  # an object store may buffer a pack up to a part
            writer.put_chunk(offset, data)
        writer.commit()
    assert case.full_detail in str(caught.value)
    writer.abort()
    case.make_room()
    assert list(pool.list_manifests()) == [("set-0", "vol-a")]
    assert {i.key for i in pool.store.list("packs/")} <= {"packs/set-0/vol-a.pack"}
    assert case.leftovers() == []
    reopened = case.reopen()
    assert list(reopened.list_manifests()) == [("set-0", "vol-a")]
    assert hashlib.sha256(read_back(reopened, kept)).hexdigest() == earlier.sha256
