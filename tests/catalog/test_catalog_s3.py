"""The same writer and views over an S3 bucket (moto on 127.0.0.1): an analyst needs the bucket
only. The filesystem is the one an object pool's registration gives: pyarrow's S3 filesystem,
or the pool's boto3 client where pyarrow cannot honour the pool's TLS or Object Lock settings."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pytest
from support.catalog import make_set
from support.notebook import run_notebook
from support.s3 import MOTO_KEYS, moto_client, new_bucket, s3_settings
from support.tls import TlsTunnel, make_certificates

from bingobackup.format.manifest import DiskManifest
from bingobackup.mover.backup import backup_disk
from bingobackup.mover.restore import write_disk_from_pool
from bingobackup.pools import PoolError
from bingobackup.resources.models import PoolRegistration, User
from bingobackup.resources.pools import create_registered_pool, open_registered_pool, pool_catalog_root
from bingobackup.resources.store import InMemoryRegistryStore
from bingobackup.storage.s3config import S3Settings
from catalog import Catalog, CatalogQueryError, CatalogWriter, JobRunRecord
from catalog.health import check_catalog
from catalog.location import CatalogLocation
from catalog.query import CatalogDamageWarning
from catalog.rebuild import rebuild_catalog


def backups_bucket(endpoint: str, *, object_lock: bool = False) -> str:
    return new_bucket(endpoint, object_lock=object_lock, prefix="backups")


def settings_for(endpoint: str, bucket: str, **overrides: Any) -> S3Settings:
    return s3_settings(endpoint, bucket, prefix="pools/object-1", **overrides)


@pytest.fixture
def registration(moto_s3: str) -> PoolRegistration:
    settings = settings_for(moto_s3, backups_bucket(moto_s3))
    return PoolRegistration(name="object-1", kind="object", location=settings.location, s3=settings)


def test_catalog_in_a_bucket_is_written_and_queried(registration: PoolRegistration) -> None:
    root, filesystem = pool_catalog_root(registration)
    assert filesystem is not None
    parts = make_set("set-s3", vms=("web", "db"))
    writer = CatalogWriter(root, filesystem=filesystem)
    writer.write_backup_set(*parts.args())
    keys = sorted(
        info.path
        for info in filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
        if info.type == pafs.FileType.File
    )
    assert [k.split("/")[4] for k in keys] == ["backup_sets", "chunks", "disk_backups", "vm_backups"]
    assert all(k.endswith(".parquet") for k in keys)  # one object per table, no directory markers

    with Catalog([("object-1", root, filesystem)]) as cat:
        assert cat.list_sets(vm="db")["set_id"].tolist() == ["set-s3"]
        assert cat.disk_manifest("set-s3", "vol-web-root") == parts.manifests[0]
        assert cat.vm_backup("set-s3", "web").vm == parts.vms[0]
        # Read through pyarrow, registered before DuckDB was locked down: the bucket reads, the host does not.
        with pytest.raises(CatalogQueryError, match="may read only its views, not files"):
            cat.query("SELECT * FROM read_csv_auto('/etc/passwd')")
    bucket = root.split("/")[0]
    with Catalog([("empty", f"{bucket}/pools/none", filesystem)]) as empty:
        assert empty.list_sets().empty


def test_a_second_set_adds_objects_and_rewrites_none(registration: PoolRegistration) -> None:
    """Write-once: Object Lock and versioned buckets keep the catalog as they keep chunks."""
    root, filesystem = pool_catalog_root(registration)
    assert filesystem is not None
    writer = CatalogWriter(root, filesystem=filesystem)
    writer.write_backup_set(*make_set("set-1").args())
    selector = pafs.FileSelector(root, recursive=True)
    first = {i.path: i.mtime for i in filesystem.get_file_info(selector) if i.type == pafs.FileType.File}
    writer.write_backup_set(*make_set("set-2", tag="b").args())
    second = {i.path: i.mtime for i in filesystem.get_file_info(selector) if i.type == pafs.FileType.File}
    assert len(second) == 2 * len(first) and {p: second[p] for p in first} == first
    with Catalog([("object-1", root, filesystem)]) as cat:
        assert sorted(cat.list_sets()["set_id"]) == ["set-1", "set-2"]


def test_an_analyst_opens_the_catalog_by_its_s3_uri(registration: PoolRegistration, moto_s3: str) -> None:
    root, filesystem = pool_catalog_root(registration)
    CatalogWriter(root, filesystem=filesystem).write_backup_set(*make_set("set-uri").args())
    host = moto_s3.removeprefix("http://")
    uri = f"s3://test:test@{root}?endpoint_override={host}&scheme=http"
    with Catalog.open(uri, pool="object-1") as cat:
        assert cat.list_sets()["set_id"].tolist() == ["set-uri"]


@pytest.fixture
def tls_moto(moto_s3: str, tmp_path: Path) -> Iterator[tuple[TlsTunnel, Path]]:
    """moto behind HTTPS with a certificate of a private CA (a self-signed object store)."""
    certificates = make_certificates(tmp_path / "tls")
    tunnel = TlsTunnel(moto_s3, certificates)
    yield tunnel, certificates.ca_file
    tunnel.close()


def back_up_a_disk(registration: PoolRegistration, tmp_path: Path) -> str:
    """Chunks and manifest of a 5-chunk disk into the pool; the disk's SHA-256."""
    pool = open_registered_pool(registration)
    data = os.urandom(3 * pool.chunk_size) + bytes(pool.chunk_size) + b"tail" * 1000
    source = tmp_path / "disk.raw"
    source.write_bytes(data)
    writer = pool.open_disk_writer("set-tls", "vol-web-root", len(data))
    backup_disk(source, writer, size_bytes=len(data), chunk_size=pool.chunk_size)
    output = tmp_path / "export.raw"
    write_disk_from_pool(
        pool, pool.load_manifest("set-tls", "vol-web-root"), output, channels=2, label="vol-web-root"
    )
    assert hashlib.sha256(output.read_bytes()).digest() == hashlib.sha256(data).digest()
    return hashlib.sha256(data).hexdigest()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # asked for: --no-verify-tls
@pytest.mark.parametrize("trust", ["ca-bundle", "no-verify"])
def test_a_pool_on_a_self_signed_endpoint_backs_up_and_queries_its_catalog(
    tls_moto: tuple[TlsTunnel, Path], moto_s3: str, tmp_path: Path, trust: str
) -> None:
    tunnel, ca_file = tls_moto
    tls: dict[str, Any] = {"ca_bundle": str(ca_file)} if trust == "ca-bundle" else {"verify_tls": False}
    settings = settings_for(tunnel.endpoint, backups_bucket(moto_s3), **tls)
    registration = create_registered_pool(
        InMemoryRegistryStore(), User(name="root", role="admin"), name="tls-1", kind="object", s3=settings,
        chunk_size=64 << 10,
    )  # fmt: skip
    back_up_a_disk(registration, tmp_path)
    root, filesystem = pool_catalog_root(registration)
    parts = make_set("set-tls", pool="tls-1")
    CatalogWriter(root, filesystem=filesystem).write_backup_set(*parts.args())
    with Catalog([("tls-1", root, filesystem)]) as cat:
        assert cat.list_sets()["set_id"].tolist() == ["set-tls"]
        assert cat.disk_manifest("set-tls", "vol-web-root") == parts.manifests[0]
    listed = moto_client(moto_s3).list_objects_v2(Bucket=settings.bucket, Prefix="pools/object-1/catalog/")
    assert len(listed["Contents"]) == 4  # one object per table


def test_a_pool_that_does_not_trust_the_endpoint_is_refused_before_anything_is_written(
    tls_moto: tuple[TlsTunnel, Path], moto_s3: str
) -> None:
    tunnel, _ = tls_moto
    settings = settings_for(tunnel.endpoint, backups_bucket(moto_s3))
    registry = InMemoryRegistryStore()
    with pytest.raises(
        OSError, match=r"TLS to s3://backups-.* failed .*certificate verify failed.* --ca-bundle"
    ):
        create_registered_pool(
            registry, User(name="root", role="admin"), name="tls-2", kind="object", s3=settings
        )
    assert registry.get_pool("tls-2") is None
    assert "Contents" not in moto_client(moto_s3).list_objects_v2(Bucket=settings.bucket)


def test_catalog_objects_of_a_locked_pool_are_locked_and_written_once(moto_s3: str) -> None:
    settings = settings_for(
        moto_s3, backups_bucket(moto_s3, object_lock=True), object_lock_mode="governance", retention_days=30
    )
    registration = PoolRegistration(name="locked-1", kind="object", location=settings.location, s3=settings)
    root, filesystem = pool_catalog_root(registration)
    assert filesystem is not None
    writer = CatalogWriter(root, filesystem=filesystem)
    writer.write_backup_set(*make_set("set-locked").args())
    client = moto_client(moto_s3)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=settings.bucket)["Contents"]]
    assert len(keys) == 4 and all(k.startswith("pools/object-1/catalog/") for k in keys)
    for key in keys:
        head = client.head_object(Bucket=settings.bucket, Key=key)
        assert head["ObjectLockMode"] == "GOVERNANCE", key
    path = f"{settings.bucket}/{keys[0]}"
    with (
        pytest.raises(PoolError, match="written once and never replaced"),
        filesystem.open_output_stream(path) as out,
    ):
        out.write(b"not the catalog file")
    versions = client.list_object_versions(Bucket=settings.bucket, Prefix=keys[0])["Versions"]
    assert len(versions) == 1
    with Catalog([("locked-1", root, filesystem)]) as cat:
        assert cat.list_sets()["set_id"].tolist() == ["set-locked"]


def test_the_history_notebook_reads_a_catalog_from_the_bucket_alone(
    registration: PoolRegistration, moto_s3: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, filesystem = pool_catalog_root(registration)
    writer = CatalogWriter(root, filesystem=filesystem)
    writer.write_backup_set(*make_set("set-a", vms=("web-in-bucket",)).args())
    writer.write_backup_set(*make_set("set-b", vms=("web-in-bucket",), tag="b").args())
    assert registration.s3 is not None
    monkeypatch.setenv("BINGOBACKUP_POOL", registration.s3.location)  # s3://bucket/pools/object-1
    monkeypatch.setenv("BINGOBACKUP_S3_ENDPOINT", moto_s3)
    monkeypatch.setenv("BINGOBACKUP_S3_ACCESS_KEY_ID", MOTO_KEYS["aws_access_key_id"])
    monkeypatch.setenv("BINGOBACKUP_S3_SECRET_ACCESS_KEY", MOTO_KEYS["aws_secret_access_key"])
    run = run_notebook(monkeypatch)
    assert "web-in-bucket" in run.text and "set-b" in run.text  # per-VM table and dedup per set
    assert run.plots >= 2


class NoManifests:
    """A pool whose manifests rebuild does not need: only a commit record is lost below."""

    def list_manifests(self) -> Iterator[tuple[str, str]]:
        return iter(())

    def load_manifest(self, set_id: str, volume_id: str) -> DiskManifest:
        raise AssertionError(f"no manifest should be read, asked for {set_id}/{volume_id}")


def test_a_damaged_object_is_skipped_checked_and_rebuilt_in_the_bucket(
    registration: PoolRegistration, moto_s3: str
) -> None:
    root, filesystem = pool_catalog_root(registration)
    assert filesystem is not None and registration.s3 is not None
    writer = CatalogWriter(root, filesystem=filesystem)
    for set_id, tag in (("set-1", "a"), ("set-2", "b")):
        committed = writer.write_backup_set(*make_set(set_id, tag=tag).args())
        writer.write_job_run(
            JobRunRecord(
                run_id=committed.run_id, job_name=committed.job_name, set_id=set_id, status="completed",
                started_at=committed.started_at, ended_at=committed.finished_at,
            )
        )  # fmt: skip
    client, bucket = moto_client(moto_s3), registration.s3.bucket
    [key] = [
        o["Key"]
        for o in client.list_objects_v2(Bucket=bucket, Prefix="pools/object-1/catalog/backup_sets/set-1.")[
            "Contents"
        ]
    ]
    whole = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    client.put_object(Bucket=bucket, Key=key, Body=whole[: len(whole) // 2])

    warning = f"skipped the damaged catalog file {bucket}/{key}"
    with pytest.warns(CatalogDamageWarning, match=warning), Catalog([("object-1", root, filesystem)]) as cat:
        assert cat.list_sets()["set_id"].tolist() == ["set-2"]
    location = CatalogLocation(root, filesystem)
    assert [d.path for d in check_catalog(location).damaged] == [f"{bucket}/{key}"]

    done = rebuild_catalog(writer, NoManifests(), format_version=2)
    assert done.not_rebuilt == [] and done.written == [f"{bucket}/{key}"]
    [(moved_from, moved_to)] = done.moved
    assert moved_from == f"{bucket}/{key}" and "/catalog/damaged/backup_sets/" in moved_to
    moved = client.get_object(Bucket=bucket, Key=moved_to.removeprefix(f"{bucket}/"))["Body"].read()
    assert moved == whole[: len(whole) // 2]  # the evidence, kept byte for byte
    assert check_catalog(location).ok
    with Catalog([("object-1", root, filesystem)]) as cat:
        assert sorted(cat.list_sets()["set_id"]) == ["set-1", "set-2"]
