"""A local pool leaves what it stored out of the backup host's page cache (files.uncache)."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import pytest
from support.page_cache import PAGE, cached_pages, require_droppable_cache

from bingobackup.storage.localdir import LocalDirBlobStore

BLOB = 4 << 20


@pytest.fixture
def store(tmp_path: Path) -> LocalDirBlobStore:
    require_droppable_cache(tmp_path)
    return LocalDirBlobStore(tmp_path / "pool", "cache-test")


def test_the_measure_sees_a_freshly_written_file_in_the_cache(
    tmp_path: Path, store: LocalDirBlobStore
) -> None:
    plain = tmp_path / "plain"
    with plain.open("wb") as handle:
        handle.write(os.urandom(BLOB))
        handle.flush()
        os.fsync(handle.fileno())
    assert cached_pages(plain) == BLOB // PAGE


def test_put_put_soon_and_streams_leave_no_stored_page_cached(store: LocalDirBlobStore) -> None:
    data = os.urandom(BLOB)
    store.put("chunks/aa/put", data)
    store.put_soon("chunks/bb/soon", data)
    aligned = mmap.mmap(-1, BLOB)  # a pack buffer: written with direct I/O
    aligned[:] = data
    store.put_soon("data/cc/handed-over", [memoryview(aligned)[: BLOB - 100], data[-100:]], lambda: None)
    store.flush()
    stream = store.open_append("packs/set/volume.pack")
    for _ in range(3):
        stream.write(data)
    stream.commit()

    for key in ("chunks/aa/put", "chunks/bb/soon", "data/cc/handed-over", "packs/set/volume.pack"):
        assert cached_pages(store.root / key) == 0, key
        assert store.get(key, 0, 64) == data[:64]  # and they read back from storage
