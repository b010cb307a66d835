"""`bingobackup pool create --kind object` with the options an operator of a private S3 service
needs: region, a private CA, Object Lock, a service without conditional writes. Through the real CLI and the session's Prefect server;
the endpoint is moto behind HTTPS with a certificate of a test CA."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.pools import make_disk, read_back, write_disk
from support.s3 import moto_client, new_bucket
from support.s3_faults import FaultProxy
from support.tls import TlsTunnel, make_certificates
from typer.testing import CliRunner

from bingobackup.cli.main import app
from bingobackup.cli.prefect_server import ServerInfo
from bingobackup.resources.pools import open_registered_pool

runner = CliRunner()


@pytest.fixture
def https_moto(moto_s3: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    certificates = make_certificates(tmp_path / "tls")
    tunnel = TlsTunnel(moto_s3, certificates)
    yield tunnel.endpoint, certificates.ca_file
    tunnel.close()


def test_object_pool_with_region_private_ca_and_object_lock_through_the_cli(
    prefect_server: ServerInfo,
    moto_s3: str,
    https_moto: tuple[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tasks.blocks import PrefectRegistryStore

    endpoint, ca_file = https_moto
    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BINGOBACKUP_S3_SECRET_ACCESS_KEY", "testing")
    name = f"locked-{uuid.uuid4().hex[:6]}"
    bucket = new_bucket(moto_s3, object_lock=True)
    common = ["pool", "create", "--kind", "object", "--bucket", bucket, "--endpoint", endpoint,
              "--access-key-id", "testing", "--chunk-size", "64KiB"]  # fmt: skip

    untrusted = runner.invoke(app, [*common, "--name", f"{name}-x"])
    assert untrusted.exit_code != 0
    assert "give that CA's PEM file with --ca-bundle" in str(untrusted.exception or untrusted.output)

    result = runner.invoke(
        app,
        [*common, "--name", name, "--prefix", "pools/locked", "--region", "eu-bingo-1",
         "--ca-bundle", str(ca_file), "--object-lock", "governance", "--retention-days", "3"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    registration = PrefectRegistryStore().get_pool(name)
    assert registration is not None and registration.s3 is not None
    assert (registration.s3.region, registration.s3.ca_bundle) == ("eu-bingo-1", str(ca_file))
    assert registration.s3.object_lock_mode == "governance"
    assert PrefectRegistryStore().get_pool(f"{name}-x") is None

    disk = make_disk()
    write_disk(open_registered_pool(registration).open_disk_writer("set-1", "vol-a", len(disk.data)), disk)
    client = moto_client(moto_s3)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="pools/locked/data/")["Contents"]]
    assert keys
    for key in keys:
        head = client.head_object(Bucket=bucket, Key=key)
        days = (head["ObjectLockRetainUntilDate"] - datetime.now(UTC)).total_seconds() / 86400
        assert head["ObjectLockMode"] == "GOVERNANCE" and 2 < days <= 3, key


def test_a_service_without_conditional_writes_is_named_and_the_pool_works_without_them(
    prefect_server: ServerInfo, moto_s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.blocks import PrefectRegistryStore

    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BINGOBACKUP_S3_SECRET_ACCESS_KEY", "testing")
    proxy = FaultProxy(moto_s3)
    proxy.refuse_conditional_writes = True  # an S3 service from before If-None-Match
    try:
        name, bucket = f"old-s3-{uuid.uuid4().hex[:6]}", new_bucket(moto_s3)
        common = ["pool", "create", "--kind", "object", "--bucket", bucket, "--endpoint", proxy.endpoint,
                  "--access-key-id", "testing", "--chunk-size", "64KiB", "--name", name]  # fmt: skip

        refused = runner.invoke(app, common)
        assert refused.exit_code != 0
        message = str(refused.exception or refused.output)
        assert "does not support conditional writes" in message and "--no-conditional-writes" in message
        assert PrefectRegistryStore().get_pool(name) is None

        created = runner.invoke(app, [*common, "--no-conditional-writes"])
        assert created.exit_code == 0, created.output
        registration = PrefectRegistryStore().get_pool(name)
        assert registration is not None and registration.s3 is not None
        assert registration.s3.conditional_writes is False
        disk = make_disk()
        pool = open_registered_pool(registration)
        manifest = write_disk(pool.open_disk_writer("set-1", "vol-a", len(disk.data)), disk)
        assert read_back(open_registered_pool(registration), manifest) == disk.data
        assert proxy.failures == 1  # only the refused creation sent If-None-Match
    finally:
        proxy.close()
