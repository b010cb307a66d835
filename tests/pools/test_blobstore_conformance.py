"""The blob-store rules of bingobackup/pools/base.py, run against every blob store kind.

Later kinds (S3, tape, LAN-free, optical) add a factory to STORES and must pass unchanged.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import pytest
from faulty_store import FaultyBlobStore
from pool_support import temp_files

from bingobackup.pools import BlobNotFoundError, BlobStore, PoolFullError

StoreFactory = Callable[[Path], FaultyBlobStore]
# Each factory returns a store whose writes can be made to fail midway (fail_with).
STORES: dict[str, StoreFactory] = {"localdir": lambda root: FaultyBlobStore(root, "test-pool")}


@pytest.fixture(params=list(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> FaultyBlobStore:
    return STORES[request.param](tmp_path / "blobs")


def keys(store: BlobStore, prefix: str = "") -> dict[str, int]:
    return {info.key: info.size for info in store.list(prefix)}


def test_put_get_stat_list_delete(store: FaultyBlobStore) -> None:
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


def test_missing_blob_errors_name_the_pool_and_key(store: FaultyBlobStore) -> None:
    for call in (lambda: store.get("chunks/zz/none"), lambda: store.stat("chunks/zz/none")):
        with pytest.raises(BlobNotFoundError, match=r"pool test-pool has no chunks/zz/none"):
            call()
    with pytest.raises(BlobNotFoundError):
        store.delete("chunks/zz/none")
    assert keys(store, "nothing/") == {}


def test_put_is_idempotent(store: FaultyBlobStore) -> None:
    store.put("chunks/ab/same", b"same bytes")
    store.put("chunks/ab/same", b"same bytes")
    assert keys(store) == {"chunks/ab/same": 10}
    assert store.get("chunks/ab/same") == b"same bytes"


def test_failed_put_leaves_no_partial_blob(store: FaultyBlobStore) -> None:
    store.put("chunks/ab/kept", b"old")
    store.fail_with(errno.EIO)
    with pytest.raises(OSError, match="Input/output error"):
        store.put("chunks/ab/new", b"x" * 4096)
    with pytest.raises(OSError):
        store.put("chunks/ab/kept", b"replacement that fails midway")
    assert store.failures == 2
    assert keys(store) == {"chunks/ab/kept": 3}
    assert store.get("chunks/ab/kept") == b"old"
    assert temp_files(store.root) == []


def test_out_of_space_is_pool_full_with_what_to_do(store: FaultyBlobStore) -> None:
    store.fail_with(errno.ENOSPC)
    with pytest.raises(PoolFullError) as caught:
        store.put("chunks/ab/big", [b"a" * 1000, b"b" * 24])
    message = str(caught.value)
    assert "pool test-pool is full" in message and "1024 more bytes" in message
    assert "free space" in message
    assert keys(store) == {} and temp_files(store.root) == []


def test_streamed_blob_is_invisible_until_commit(store: FaultyBlobStore) -> None:
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
    assert set(keys(store)) == {"packs/s1/v1.pack"} and temp_files(store.root) == []


def test_streamed_blob_out_of_space_cleans_up(store: FaultyBlobStore) -> None:
    writer = store.open_append("packs/s1/v1.pack")
    writer.write(b"head")
    store.fail_with(errno.ENOSPC)
    with pytest.raises(PoolFullError, match="7 more bytes"):
        writer.write(b"chunk!!")
    writer.abort()
    assert keys(store) == {} and temp_files(store.root) == []


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "a/.tmp-x"])
def test_unsafe_keys_are_refused(store: FaultyBlobStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        store.put(key, b"x")
