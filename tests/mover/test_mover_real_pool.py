"""The mover against the real pools: backup, reopen, export a sparse image, detect damage."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.mover import CHUNK, TestImage, allocated_bytes, make_test_image, sha256_of
from support.page_cache import cached_pages, require_droppable_cache
from support.pool_files import damage_chunk

from bingobackup.mover.backup import DiskBackupResult, backup_disk
from bingobackup.mover.errors import RestoreChunkError
from bingobackup.mover.restore import write_disk_from_pool
from bingobackup.pools import Pool, create_pool, open_pool

PASSPHRASE = "correct horse battery staple"
FAST_SCRYPT = 1 << 10  # tests only: the real default is deliberately slow


@pytest.fixture
def image(tmp_path: Path) -> TestImage:
    return make_test_image(tmp_path / "disk.raw")


def _pool(tmp_path: Path, kind: str, encrypted: bool) -> Pool:
    return create_pool(
        tmp_path / f"pool-{kind}",
        kind,  # type: ignore[arg-type]
        chunk_size=CHUNK,
        encrypted=encrypted,
        passphrase=PASSPHRASE if encrypted else None,
        scrypt_n=FAST_SCRYPT,
    )


def _backup(pool: Pool, image: TestImage, set_id: str, mode: str = "agent") -> DiskBackupResult:
    writer = pool.open_disk_writer(set_id, "vol-test", image.size)
    return backup_disk(
        image.path,
        writer,
        size_bytes=image.size,
        chunk_size=pool.chunk_size,
        dedup_mode=mode,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(("kind", "encrypted"), [("dedup", False), ("dedup", True), ("standard", True)])
def test_backup_then_export_from_the_reopened_pool_gives_the_same_disk(
    image: TestImage, tmp_path: Path, kind: str, encrypted: bool
) -> None:
    result = _backup(_pool(tmp_path, kind, encrypted), image, "set-1")
    assert result.bytes_stored > 0

    reopened = open_pool(tmp_path / f"pool-{kind}", PASSPHRASE if encrypted else None)
    manifest = reopened.load_manifest("set-1", "vol-test")
    assert manifest == result.manifest
    output = tmp_path / "export.raw"
    write_disk_from_pool(reopened, manifest, output, channels=2, label="VM linux_local disk vol-test")
    assert sha256_of(output) == image.sha256
    assert allocated_bytes(output) <= manifest.data_bytes + 2 * CHUNK


def test_an_export_drops_the_restored_disk_from_the_page_cache(image: TestImage, tmp_path: Path) -> None:
    require_droppable_cache(tmp_path)
    pool = _pool(tmp_path, "dedup", False)
    manifest = _backup(pool, image, "set-1").manifest
    output = tmp_path / "export.raw"
    write_disk_from_pool(pool, manifest, output, channels=2)
    assert cached_pages(output) == 0
    assert sha256_of(output) == image.sha256


@pytest.mark.parametrize("mode", ["agent", "server"])
def test_dedup_pool_counters_for_a_second_backup(image: TestImage, tmp_path: Path, mode: str) -> None:
    pool = _pool(tmp_path, "dedup", encrypted=False)
    first = _backup(pool, image, "set-1", mode)
    second = _backup(pool, image, "set-2", mode)
    data = first.manifest.data_bytes
    assert second.bytes_stored == 0
    assert second.bytes_sent == (0 if mode == "agent" else data)
    assert first.bytes_stored > 0
    assert second.manifest.chunks == first.manifest.chunks


def test_a_damaged_chunk_is_named_on_export(image: TestImage, tmp_path: Path) -> None:
    pool = _pool(tmp_path, "dedup", encrypted=True)
    manifest = _backup(pool, image, "set-1").manifest
    damaged = manifest.chunks[2]  # chunk 4: used once (chunks 0 and 3 share a digest)
    damage_chunk(tmp_path / "pool-dedup", damaged, -5)

    output = tmp_path / "export.raw"
    reopened = open_pool(tmp_path / "pool-dedup", PASSPHRASE)
    with pytest.raises(RestoreChunkError) as raised:
        write_disk_from_pool(reopened, manifest, output, label="VM linux_local disk vol-test")
    message = str(raised.value)
    assert message.startswith("VM linux_local disk vol-test chunk at disk offset")
    assert f"offset {damaged.offset}" in message and damaged.digest in message
    assert PASSPHRASE not in message
    assert not output.exists()
