"""The blob-store rules of bingobackup/storage/base.py as a suite every store passes
(restic's backend tests, kopia's blobtesting): a store's tests subclass `BlobStoreConformance`
and give a `case` fixture (a `StoreCase` of theirs), in a few lines:

    class TestMyStore(BlobStoreConformance):
        @pytest.fixture
        def case(self, tmp_path):
            made = MyCase(tmp_path)
            yield made
            made.close()

Needs pytest (a test dependency), so only tests import this module.
"""

from __future__ import annotations

import errno
import functools
import mmap
import os

import pytest

from bingobackup.storage import BlobNotFoundError, BlobStore, PoolError, PoolFullError
from bingobackup.storage.testing.cases import StoreCase

PAGE = mmap.PAGESIZE


def keys(store: BlobStore, prefix: str = "") -> dict[str, int]:
    return {info.key: info.size for info in store.list(prefix)}


def _put_streamed(store: BlobStore, key: str, data: bytes) -> None:
    writer = store.open_append(key)
    try:
        writer.write(data)
        writer.commit()
    finally:
        writer.abort()


class BlobStoreConformance:
    """Every rule of the blob store, as tests of the store the subclass's `case` fixture gives."""

    @pytest.fixture
    def store(self, case: StoreCase) -> BlobStore:
        return case.store

    def test_put_get_stat_list_delete(self, store: BlobStore) -> None:
        store.put("chunks/ab/ab01", b"hello world")
        store.put("chunks/cd/cd02", [b"two ", memoryview(b"parts")])
        store.put("manifests/s1/v1.json", b"{}")

        assert store.get("chunks/ab/ab01") == b"hello world"
        assert store.get("chunks/ab/ab01", 6, 5) == b"world"
        assert store.get("chunks/cd/cd02") == b"two parts"
        assert store.stat("chunks/cd/cd02").size == 9
        assert store.exists("manifests/s1/v1.json")
        assert keys(store, "chunks/") == {"chunks/ab/ab01": 11, "chunks/cd/cd02": 9}
        assert keys(store, "chunks/ab") == {"chunks/ab/ab01": 11}
        assert set(keys(store)) == {"chunks/ab/ab01", "chunks/cd/cd02", "manifests/s1/v1.json"}

        store.delete("chunks/ab/ab01")
        assert not store.exists("chunks/ab/ab01")
        assert set(keys(store, "chunks/")) == {"chunks/cd/cd02"}

    def test_missing_blob_errors_name_the_pool_and_key(self, store: BlobStore) -> None:
        for call in (lambda: store.get("chunks/zz/none"), lambda: store.stat("chunks/zz/none")):
            with pytest.raises(BlobNotFoundError, match=r"pool test-pool has no chunks/zz/none"):
                call()
        with pytest.raises(BlobNotFoundError):
            store.delete("chunks/zz/none")
        assert keys(store, "nothing/") == {}

    def test_put_is_idempotent(self, store: BlobStore) -> None:
        store.put("chunks/ab/same", b"same bytes")
        store.put("chunks/ab/same", b"same bytes")
        assert keys(store) == {"chunks/ab/same": 10}
        assert store.get("chunks/ab/same") == b"same bytes"

    @pytest.mark.parametrize("how", ["put", "streamed"])
    def test_other_bytes_of_the_same_size_under_a_key_are_never_silently_dropped(
        self, store: BlobStore, how: str
    ) -> None:
        """A store may refuse to replace a blob (write-once object storage) or replace it (a local
        directory), but a write that returns must have stored its bytes: a retried backup whose
        manifest changed would otherwise be cataloged against the old bytes."""
        write = store.put if how == "put" else functools.partial(_put_streamed, store)
        key = "manifests/s1/v1.json"
        size = (5 << 20) * 2 + 7 if how == "streamed" else 4096  # streamed: a multipart upload on S3
        first = bytes(range(256)) * (size // 256) + b"f" * (size % 256)
        second = first[:-1] + b"s"
        write(key, first)
        write(key, first)  # rule 2: the same bytes again are fine
        try:
            write(key, second)
        except PoolError as refused:
            assert key in str(refused) and "written once and never replaced" in str(refused)
            assert store.get(key) == first
        else:
            assert store.get(key) == second
        assert keys(store) == {key: size}

    def test_a_chunk_sealed_twice_is_stored_once_whatever_its_bytes(self, store: BlobStore) -> None:
        """Two backup hosts racing on one new chunk of an encrypted pool seal it with different
        nonces: both puts succeed and one blob stays, so neither disk fails (rule 2)."""
        key = "chunks/cd/cdef"
        store.put(key, b"sealed with nonce 1")
        store.put(key, b"sealed with nonce 2")
        store.put_soon(key, b"sealed with nonce 3")
        store.flush()
        assert keys(store) == {key: len(b"sealed with nonce 1")}
        assert store.get(key) in {b"sealed with nonce 1", b"sealed with nonce 2", b"sealed with nonce 3"}

    def test_failed_put_leaves_no_partial_blob(self, case: StoreCase, store: BlobStore) -> None:
        store.put("manifests/kept", b"old")
        case.fail_with(errno.EIO)
        with pytest.raises(OSError) as caught:
            store.put("chunks/ab/new", b"x" * 4096)
        assert caught.value.errno == errno.EIO
        # Fails midway, or is refused as a rewrite by a store that looks the key up first.
        with pytest.raises((OSError, PoolError)):
            store.put("manifests/kept", b"replacement that fails midway")
        assert case.failures >= 1
        assert keys(store) == {"manifests/kept": 3}
        assert store.get("manifests/kept") == b"old"
        assert case.leftovers() == []

    def test_out_of_space_is_pool_full_with_what_to_do(self, case: StoreCase, store: BlobStore) -> None:
        case.fail_with(errno.ENOSPC)
        with pytest.raises(PoolFullError) as caught:
            store.put("chunks/ab/big", [b"a" * 1000, b"b" * 24])
        message = str(caught.value)
        assert "pool test-pool is full" in message and "1024 more bytes" in message
        assert "free space" in message
        assert keys(store) == {} and case.leftovers() == []

    def test_streamed_blob_is_invisible_until_commit(self, case: StoreCase, store: BlobStore) -> None:
        writer = store.open_append("packs/s1/v1.pack")
        assert writer.write(b"head") == 0
        assert writer.write([b"12", b"345"]) == 4
        assert writer.size == 9
        assert keys(store) == {}
        writer.commit()
        assert store.get("packs/s1/v1.pack") == b"head12345"

        aborted = store.open_append("packs/s1/v2.pack")
        aborted.write(b"partial")
        aborted.abort()
        aborted.abort()
        assert set(keys(store)) == {"packs/s1/v1.pack"} and case.leftovers() == []

    def test_streamed_blob_goes_on_after_a_lost_link_from_where_the_store_rewinds_to(
        self, case: StoreCase, store: BlobStore
    ) -> None:
        """What a standard pack's resume buffer relies on (pools/standard.py): after a failed
        write, `rewind` to the last `sync` cuts the blob back (an uploaded S3 part stays: it says
        where writing goes on), and the kept bytes written again from there make the whole blob."""
        mib = 1 << 20
        first, second, third = os.urandom(3 * mib), os.urandom(3 * mib), os.urandom(5 * mib)
        writer = store.open_append("packs/s1/v1.pack")
        writer.write(first)
        writer.sync()
        durable = writer.size
        writer.write(second)  # S3: its first 5 MiB part goes up here
        case.fail_with(errno.EIO)
        with pytest.raises(OSError):
            writer.write(third)  # a local file fails midway; S3 fails uploading the next part
        case.fail_with(None)
        kept = second + third
        at = writer.rewind(durable)
        assert durable <= at <= durable + len(kept)
        writer.write(kept[at - durable :])
        writer.commit()
        assert store.get("packs/s1/v1.pack") == first + second + third
        assert case.leftovers() == []

    def test_streamed_blob_out_of_space_cleans_up(self, case: StoreCase, store: BlobStore) -> None:
        writer = store.open_append("packs/s1/v1.pack")
        writer.write(b"head")
        case.fail_with(errno.ENOSPC)
        with pytest.raises(PoolFullError, match="pool test-pool is full"):
            writer.write(b"chunk!!")  # a local file fails here; an object store buffers up to a part
            writer.commit()  # ... and fails here
        writer.abort()
        assert keys(store) == {} and case.leftovers() == []

    def test_large_streamed_blob_spans_parts_and_reads_back_in_ranges(
        self, case: StoreCase, store: BlobStore
    ) -> None:
        part = 5 << 20
        payload = bytes(range(256)) * (part * 2 // 256) + b"tail"
        writer = store.open_append("packs/s1/big.pack")
        for start in range(0, len(payload), 3 << 20):
            writer.write(payload[start : start + (3 << 20)])
        assert keys(store) == {} and writer.size == len(payload)
        writer.commit()
        assert store.stat("packs/s1/big.pack").size == len(payload)
        assert store.get("packs/s1/big.pack", part - 2, 6) == payload[part - 2 : part + 4]
        assert store.get("packs/s1/big.pack", len(payload) - 4) == b"tail"
        store.put("packs/s1/big-put.pack", [payload[:part], payload[part:]])
        assert store.get("packs/s1/big-put.pack") == payload and case.leftovers() == []

    def test_put_soon_blobs_are_complete_once_flushed(self, case: StoreCase, store: BlobStore) -> None:
        buffers = [bytearray(f"chunk {n} ".encode() * 5000) for n in range(20)]
        expected = {f"chunks/{n:02d}/c{n}": bytes(b) for n, b in enumerate(buffers)}
        for (key, _), buffer in zip(expected.items(), buffers, strict=True):
            store.put_soon(key, [buffer[:7], memoryview(buffer)[7:]])
            buffer[:] = b"\xff" * len(buffer)  # rule 9: the caller may reuse its buffer at once
        store.flush()
        assert keys(store, "chunks/") == {key: len(data) for key, data in expected.items()}
        other = case.fresh_store()  # what another process sees
        assert all(other.get(key) == data for key, data in expected.items())
        assert case.leftovers() == []
        store.flush()  # nothing pending: returns at once

    def test_a_handed_over_blob_is_released_once_and_the_caller_may_reuse_it_then(
        self, case: StoreCase, store: BlobStore
    ) -> None:
        """Rule 9's hand-over (how dedup packs are written): the store may keep the caller's buffer
        and write it later, so it gives it back only once it no longer needs it."""
        buffer = mmap.mmap(-1, 3 * PAGE)  # page-aligned, as a pack buffer: a local store writes it direct
        payload = os.urandom(2 * PAGE + 100)
        buffer[: len(payload)] = payload
        released = 0

        def release() -> None:
            nonlocal released
            released += 1
            buffer[:] = b"\xff" * len(buffer)  # the caller's next pack goes here at once

        store.put_soon("data/ab/pack", [memoryview(buffer)[: len(payload)], b"index", b"footer"], release)
        store.flush()
        assert released == 1
        assert case.fresh_store().get("data/ab/pack") == payload + b"indexfooter"
        assert case.leftovers() == []

    def test_put_soon_out_of_space_is_pool_full(self, case: StoreCase, store: BlobStore) -> None:
        case.fail_with(errno.ENOSPC)
        with pytest.raises(PoolFullError, match="pool test-pool is full"):
            store.put_soon("chunks/ab/big", b"a" * 1024)
            store.flush()
        assert keys(store) == {} and case.leftovers() == []

    @pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "a/.tmp-x"])
    def test_unsafe_keys_are_refused(self, store: BlobStore, key: str) -> None:
        with pytest.raises(ValueError, match="invalid blob key"):
            store.put(key, b"x")
