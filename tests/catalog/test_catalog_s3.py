"""The same writer and views over an S3 bucket (moto on 127.0.0.1): an analyst needs the bucket only."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pyarrow.fs as pafs
import pytest
from catalog_support import make_set
from moto.server import ThreadedMotoServer

from catalog import Catalog, CatalogWriter


@pytest.fixture
def s3() -> Iterator[tuple[pafs.S3FileSystem, str]]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        assert server._server is not None
        endpoint = f"127.0.0.1:{server._server.server_port}"
        boto3.client(
            "s3",
            endpoint_url=f"http://{endpoint}",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        ).create_bucket(Bucket="backups")
        filesystem = pafs.S3FileSystem(
            access_key="test",
            secret_key="test",
            endpoint_override=endpoint,
            scheme="http",
            region="us-east-1",
        )
        yield filesystem, endpoint
    finally:
        server.stop()


def test_catalog_in_a_bucket_is_written_and_queried(s3: tuple[pafs.S3FileSystem, str]) -> None:
    filesystem, _ = s3
    parts = make_set("set-s3", vms=("web", "db"))
    writer = CatalogWriter("backups/pools/object-1", filesystem=filesystem)
    writer.write_backup_set(*parts.args())
    keys = sorted(
        info.path
        for info in filesystem.get_file_info(pafs.FileSelector("backups/pools/object-1", recursive=True))
        if info.type == pafs.FileType.File
    )
    assert [k.split("/")[4] for k in keys] == ["backup_sets", "chunks", "disk_backups", "vm_backups"]
    assert all(k.endswith(".parquet") for k in keys)  # one object per table, no directory markers

    with Catalog([("object-1", "backups/pools/object-1", filesystem)]) as cat:
        assert cat.list_sets(vm="db")["set_id"].tolist() == ["set-s3"]
        assert cat.disk_manifest("set-s3", "vol-web-root") == parts.manifests[0]
        assert cat.vm_backup("set-s3", "web").vm == parts.vms[0]
    with Catalog([("empty", "backups/pools/none", filesystem)]) as empty:
        assert empty.list_sets().empty
