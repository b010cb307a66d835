"""The blob-store rules of bingobackup/storage/base.py (bingobackup/storage/testing/conformance.py)
run against every blob store kind: the local directory, and S3 against moto's S3 server behind a
fault-injecting proxy, with and without conditional writes. Each kind is a class here giving
its `case`; a local-only rule follows."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.backends import S3Case

from bingobackup.storage.testing.cases import LocalCase
from bingobackup.storage.testing.conformance import BlobStoreConformance, keys


class TestLocalDirStore(BlobStoreConformance):
    @pytest.fixture
    def case(self, tmp_path: Path) -> Iterator[LocalCase]:
        made = LocalCase(tmp_path / "blobs", "test-pool")
        yield made
        made.close()


class TestS3Store(BlobStoreConformance):
    @pytest.fixture
    def case(self, moto_s3: str) -> Iterator[S3Case]:
        made = S3Case(moto_s3, "test-pool")
        yield made
        made.close()


class TestS3StoreWithoutConditionalWrites(BlobStoreConformance):
    """A service without If-None-Match: write-once checked by a lookup before each write."""

    @pytest.fixture
    def case(self, moto_s3: str) -> Iterator[S3Case]:
        made = S3Case(moto_s3, "test-pool", conditional_writes=False)
        yield made
        made.close()


def test_local_put_soon_failed_fsync_is_retried_before_anything_else(tmp_path: Path) -> None:
    case = LocalCase(tmp_path / "blobs", "test-pool")
    store = case.faulty
    store.put_soon("chunks/aa/first", b"durable")
    store.flush()
    store.fail_sync_with(errno.EIO)  # the data reached the page cache; storage fails on fsync
    pending = bytearray(b"kept until durable")
    store.put_soon("chunks/bb/pending", pending)
    pending[:] = b"\xff" * len(pending)  # rule 9: reused at once; the redo must not see it
    with pytest.raises(OSError) as caught:
        store.flush()
    assert caught.value.errno == errno.EIO
    with pytest.raises(OSError):  # still down: the failed blob goes first, and fails again
        store.put_soon("chunks/cc/next", b"x")
    assert keys(store) == {"chunks/aa/first": 7} and case.leftovers() == []

    store.fail_sync_with(None)  # storage is back: what a reconnecting backup retries
    store.put_soon("chunks/cc/next", b"x")
    store.flush()
    assert keys(store) == {"chunks/aa/first": 7, "chunks/bb/pending": 18, "chunks/cc/next": 1}
    assert store.get("chunks/bb/pending") == b"kept until durable" and case.leftovers() == []
