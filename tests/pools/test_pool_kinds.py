"""Registering every pool kind, and a backup → export round trip through each of the six with
SHA-256 equality (the engine's mover on both ends). The flow-level round trip (backup flow →
restore disk flow) over an object pool is tests/flows/test_pool_kinds_flow.py."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from support.pools import CHUNK, PASSPHRASE
from support.s3 import moto_client, new_bucket, s3_settings

from bingobackup.mover.backup import backup_disk
from bingobackup.mover.restore import write_disk_from_pool
from bingobackup.pools import Pool, PoolError
from bingobackup.pools.opticalpool import OpticalPool
from bingobackup.pools.tapepool import TapePool
from bingobackup.resources.errors import RegistrationError
from bingobackup.resources.models import PoolRegistration, User
from bingobackup.resources.pools import (
    OpticalOptions,
    TapeOptions,
    check_backup_host_sees_pool,
    create_registered_pool,
    open_registered_pool,
    pool_catalog_root,
    registered_pool_stats,
)
from bingobackup.resources.store import InMemoryRegistryStore

ADMIN = User(name="root", role="admin")


def make_image(path: Path) -> str:
    """random | zeros | text | the random chunk again | a short random tail; returns its SHA-256."""
    first = os.urandom(CHUNK)
    text = (b"backup host log line\n" * CHUNK)[:CHUNK]
    data = first + bytes(CHUNK) + text + first + os.urandom(CHUNK // 2)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def round_trip(pool: Pool, tmp_path: Path) -> None:
    source = tmp_path / "disk.raw"
    digest = make_image(source)
    size = source.stat().st_size
    result = backup_disk(
        source, pool.open_disk_writer("set-1", "vol-a", size), size_bytes=size, chunk_size=pool.chunk_size
    )
    assert result.bytes_stored > 0
    output = tmp_path / "export.raw"
    write_disk_from_pool(pool, pool.load_manifest("set-1", "vol-a"), output, channels=2, label="disk vol-a")
    assert hashlib.sha256(output.read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("kind", ["dedup", "standard"])
def test_directory_pool_registered_round_trip(tmp_path: Path, kind: str) -> None:
    registration = create_registered_pool(
        InMemoryRegistryStore(),
        ADMIN,
        name=f"{kind}-1",
        kind=kind,  # type: ignore[arg-type]
        location=tmp_path / "pool",
        chunk_size=CHUNK,
        compression="none",
    )
    pool = open_registered_pool(registration)
    assert pool.kind == kind and registration.location == str((tmp_path / "pool").resolve())
    round_trip(pool, tmp_path)


def test_object_pool_round_trip_through_the_bucket(moto_s3: str, tmp_path: Path) -> None:
    registry = InMemoryRegistryStore()
    settings = s3_settings(moto_s3, new_bucket(moto_s3), secret_access_key="s3cr3t-object-key")
    registration = create_registered_pool(
        registry,
        ADMIN,
        name="object-1",
        kind="object",
        s3=settings,
        chunk_size=CHUNK,
        encrypted=True,
        passphrase=PASSPHRASE,
    )
    assert registration.location == f"s3://{settings.bucket}/pools/p1"
    assert registration.on_pool_format == "dedup"
    assert "s3cr3t-object-key" not in repr(registration) and PASSPHRASE not in repr(registration)
    round_trip(open_registered_pool(registration), tmp_path)
    keys = [o["Key"] for o in moto_client(moto_s3).list_objects_v2(Bucket=settings.bucket)["Contents"]]
    assert "pools/p1/config.json" in keys and any(k.startswith("pools/p1/data/") for k in keys)
    root, filesystem = pool_catalog_root(registration)
    assert root == f"{settings.bucket}/pools/p1" and filesystem is not None


def test_object_pool_with_object_lock_needs_a_locked_bucket(moto_s3: str) -> None:
    registry = InMemoryRegistryStore()
    plain = s3_settings(moto_s3, new_bucket(moto_s3), object_lock_mode="compliance", retention_days=30)
    with pytest.raises(PoolError, match="has no S3 Object Lock"):
        create_registered_pool(registry, ADMIN, name="locked", kind="object", s3=plain, chunk_size=CHUNK)
    assert registry.get_pool("locked") is None
    locked = plain.model_copy(update={"bucket": new_bucket(moto_s3, object_lock=True)})
    registration = create_registered_pool(
        registry, ADMIN, name="locked", kind="object", s3=locked, chunk_size=CHUNK, pool_format="standard"
    )
    assert open_registered_pool(registration).kind == "standard"


def test_object_pool_without_bucket_is_refused_clearly() -> None:
    with pytest.raises(RegistrationError, match="needs --bucket"):
        create_registered_pool(InMemoryRegistryStore(), ADMIN, name="o", kind="object")


@pytest.mark.parametrize("pool_format", ["dedup", "standard"])
def test_lanfree_pool_round_trip_and_host_check(tmp_path: Path, pool_format: str) -> None:
    registration = create_registered_pool(
        InMemoryRegistryStore(),
        ADMIN,
        name="san-lun",
        kind="lanfree",
        location=tmp_path / "san",
        chunk_size=CHUNK,
        pool_format=pool_format,  # type: ignore[arg-type]
        backup_hosts=["i-AAAA0001", "i-AAAA0002"],
    )
    check_backup_host_sees_pool(registration, "i-AAAA0002")
    with pytest.raises(RegistrationError) as refused:
        check_backup_host_sees_pool(registration, "i-BBBB0009")
    message = str(refused.value)
    assert "LAN-free storage attached to backup host(s) i-AAAA0001, i-AAAA0002, not to i-BBBB0009" in message
    assert "Nothing was snapshotted or created" in message
    pool = open_registered_pool(registration)
    assert pool.kind == pool_format
    round_trip(pool, tmp_path)


def test_lanfree_pool_needs_its_backup_hosts(tmp_path: Path) -> None:
    with pytest.raises(RegistrationError, match="needs the ids of the backup hosts"):
        create_registered_pool(InMemoryRegistryStore(), ADMIN, name="lun", kind="lanfree", location=tmp_path)


def test_lanfree_pool_not_mounted_here_is_named(tmp_path: Path) -> None:
    registration = PoolRegistration(
        name="lun", kind="lanfree", location=str(tmp_path / "not-mounted"), backup_hosts=["i-AAAA0001"]
    )
    with pytest.raises(PoolError, match="is mounted only on its backup hosts"):
        open_registered_pool(registration)


def test_tape_pool_registered_round_trip(tmp_path: Path) -> None:
    registration = create_registered_pool(
        InMemoryRegistryStore(),
        ADMIN,
        name="tape-1",
        kind="tape",
        location=tmp_path / "tape-home",
        chunk_size=CHUNK,
        tape=TapeOptions(barcodes=["AA0001L8", "AA0002L8"], capacity_bytes=1 << 20, block_size=16 << 10),
    )
    assert registration.library == str(tmp_path / "tape-home" / "library")
    pool = open_registered_pool(registration)
    assert isinstance(pool, TapePool) and [c.barcode for c in pool.library.cartridges()] == [
        "AA0001L8",
        "AA0002L8",
    ]
    round_trip(pool, tmp_path)
    figures = registered_pool_stats(registration)
    assert figures.media is not None and (figures.media.kind, figures.media.count) == ("cartridge", 2)
    assert figures.sets == 1 and figures.stored_bytes >= figures.media.stored_bytes > 0
    assert figures.free_bytes == 2 * (1 << 20) - figures.media.stored_bytes  # the cartridges' room


def test_optical_pool_registered_round_trip(tmp_path: Path) -> None:
    registration = create_registered_pool(
        InMemoryRegistryStore(),
        ADMIN,
        name="optical-1",
        kind="optical",
        location=tmp_path / "optical-home",
        chunk_size=CHUNK,
        encrypted=True,
        passphrase=PASSPHRASE,
        optical=OpticalOptions(disc_bytes=1 << 20),
    )
    assert registration.on_pool_format == "standard" and PASSPHRASE not in repr(registration)
    pool = open_registered_pool(registration)
    assert isinstance(pool, OpticalPool) and pool.discs.output == tmp_path / "optical-home" / "images"
    round_trip(pool, tmp_path)
    assert pool.close_disc() is not None
    assert [p.name for p in (tmp_path / "optical-home" / "images").iterdir()] == ["OPTICAL_1_0001.iso"]
    round_trip(pool, tmp_path)  # the second backup starts the next disc; both read back
