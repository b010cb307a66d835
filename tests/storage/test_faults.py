"""Fault injection around any blob store, and retryability as the store's word (rule 10 of
bingobackup/storage/base.py): what link retry rides out and what fails at once."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from bingobackup.jobs.linkretry import is_link_error
from bingobackup.storage import (
    BlobNotFoundError,
    LocalDirBlobStore,
    PoolError,
    PoolFullError,
    StoreIOError,
    is_permanent_error,
)
from bingobackup.storage.testing.faulty import FaultyStore


def test_a_wrapped_store_fails_the_chosen_calls_then_works_again(tmp_path: Path) -> None:
    store = FaultyStore(LocalDirBlobStore(tmp_path / "blobs", "wrapped"))
    store.fail("put", StoreIOError("S3 could not write: link down"), times=2)
    for _ in range(2):
        with pytest.raises(StoreIOError, match="link down"):
            store.put("chunks/aa/one", b"first")
    assert list(store.list()) == []  # the failed calls never reached the store
    store.put("chunks/aa/one", b"first")
    store.fail("get", OSError(errno.EIO, "I/O error"), times=None)
    for _ in range(3):
        with pytest.raises(OSError, match="I/O error"):
            store.get("chunks/aa/one")
    store.heal()
    assert store.get("chunks/aa/one") == b"first" and store.failures == 5


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (StoreIOError("S3 could not write: SlowDown after 5 tries"), False),
        (ConnectionResetError(errno.ECONNRESET, "reset"), False),
        (TimeoutError("timed out"), False),
        (OSError(errno.ESTALE, "stale NFS handle"), False),
        (PoolFullError("p", 10), True),
        (BlobNotFoundError("p", "chunks/aa/x"), True),
        (PoolError("S3 refused to write (AccessDenied)"), True),
        (OSError(errno.EACCES, "permission denied"), True),
        (ValueError("a bug"), True),
    ],
)
def test_whether_retrying_may_help_is_the_stores_word(error: BaseException, permanent: bool) -> None:
    assert is_permanent_error(error) is permanent
    assert is_link_error(error) is not permanent  # link retry asks the store, nothing else
