"""The same writer and views over an S3 bucket (moto on 127.0.0.1): an analyst needs the bucket
only. The filesystem is the one an object pool's registration gives (pyarrow's S3 filesystem)."""

from __future__ import annotations

import uuid

import boto3
import pyarrow.fs as pafs
import pytest
from catalog_support import make_set

from bingobackup.pools.s3config import S3Settings
from bingobackup.resources.models import PoolRegistration
from bingobackup.resources.pools import pool_catalog_root
from catalog import Catalog, CatalogWriter


@pytest.fixture
def registration(moto_s3: str) -> PoolRegistration:
    bucket = f"backups-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=moto_s3,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    settings = S3Settings(
        bucket=bucket,
        prefix="pools/object-1",
        endpoint_url=moto_s3,
        access_key_id="test",
        secret_access_key="test",  # type: ignore[arg-type]
    )
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
