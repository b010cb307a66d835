"""What the object-storage pool adds to the blob-store rules: retries on throttling and 5xx,
write-once objects, Object Lock retention, and secrets that never show."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from support.backends import S3Case
from support.s3 import MOTO_KEYS, new_bucket, s3_settings

from bingobackup.pools import BlobStore, PoolError
from bingobackup.storage.s3config import MIN_PART_SIZE
from bingobackup.storage.s3store import S3BlobStore


@pytest.fixture
def case(moto_s3: str) -> Iterator[S3Case]:
    made = S3Case(moto_s3, "object-pool", max_attempts=3)
    yield made
    made.close()


def test_throttling_and_server_errors_are_retried_until_they_pass(case: S3Case) -> None:
    case.proxy.fail_next(503, 500)
    case.store.put("chunks/ab/ab01", b"survives two faults")
    assert case.proxy.failures == 2
    case.proxy.fail_next(500)
    assert case.store.get("chunks/ab/ab01") == b"survives two faults"
    assert case.proxy.failures == 3


def test_errors_that_outlast_the_retries_say_what_failed_and_what_to_check(case: S3Case) -> None:
    case.proxy.fail_next(*[503] * 3)
    with pytest.raises(OSError) as caught:
        case.store.put("chunks/ab/ab02", b"x")
    message = str(caught.value)
    assert "S3 could not write chunks/ab/ab02 in pool object-pool: SlowDown after 3 tries" in message
    assert "healthy" in message and case.proxy.failures == 3
    assert not case.store.exists("chunks/ab/ab02")


def test_objects_are_written_once_and_never_replaced(case: S3Case) -> None:
    case.store.put("config.json", b"first")
    case.store.put("config.json", b"first")  # the same blob again: fine
    with pytest.raises(PoolError, match="written once and never replaced"):
        case.store.put("config.json", b"different length")
    with pytest.raises(PoolError, match=r"already holds config\.json with other bytes than this write"):
        case.store.put("config.json", b"FIRST")  # same size, other bytes: refused, not dropped
    versions = case.direct.list_object_versions(Bucket=case.settings.bucket)
    assert [v["Key"] for v in versions.get("Versions", [])] == ["pools/p1/config.json"]
    assert case.store.get("config.json") == b"first"


def _stream(store: BlobStore, key: str, data: bytes) -> None:
    writer = store.open_append(key)
    writer.write(data)
    writer.commit()


@pytest.mark.parametrize("size", [1000, 2 * MIN_PART_SIZE + 10], ids=["put", "multipart"])
def test_a_service_whose_etags_are_not_md5s_still_tells_a_retry_from_a_rewrite(
    case: S3Case, size: int
) -> None:
    """Services encrypting at rest answer ETags that are not MD5s: the object is then read back."""
    data = os.urandom(size)
    case.store.put("packs/s1/v1.pack", data)
    case.proxy.disguise_etags = True
    case.store.put("packs/s1/v1.pack", data)  # a retry of the same blob: read back, equal, fine
    _stream(case.store, "packs/s1/v1.pack", data)
    with pytest.raises(PoolError, match=r"already holds packs/s1/v1\.pack with other bytes"):
        case.store.put("packs/s1/v1.pack", data[:-1] + bytes([data[-1] ^ 1]))
    assert hashlib.sha256(case.read_raw("packs/s1/v1.pack")).digest() == hashlib.sha256(data).digest()


def test_a_large_object_is_a_multipart_upload_and_a_small_one_a_single_put(case: S3Case) -> None:
    """The ETag S3 gives a completed multipart upload ends in '-<number of parts>'."""
    big = os.urandom(2 * MIN_PART_SIZE + 10)
    case.store.put("packs/s1/big.pack", big)
    _stream(case.store, "packs/s1/streamed.pack", big)
    case.store.put("chunks/ab/small", b"one request")
    etag = {
        key: case.direct.head_object(Bucket=case.settings.bucket, Key=case.settings.key_of(key))["ETag"]
        for key in ("packs/s1/big.pack", "packs/s1/streamed.pack", "chunks/ab/small")
    }
    assert etag["packs/s1/big.pack"].strip('"').endswith("-3")
    assert etag["packs/s1/streamed.pack"].strip('"').endswith("-3")
    assert etag["chunks/ab/small"].strip('"') == hashlib.md5(b"one request").hexdigest()
    assert case.leftovers() == []


@pytest.mark.parametrize("addressing", ["path", "virtual"])
def test_addressing_and_region_reach_the_s3_clients(addressing: str) -> None:
    settings = s3_settings(
        "http://s3.example.test:9000", "backups-a", region="cn-bingo-1", addressing=addressing
    )
    client = settings.boto3_client()
    assert client.meta.region_name == "cn-bingo-1"
    assert client.meta.config.s3["addressing_style"] == addressing
    url = client.generate_presigned_url("get_object", Params={"Bucket": "backups-a", "Key": "k"})
    expected = (
        "backups-a.s3.example.test:9000/" if addressing == "virtual" else "s3.example.test:9000/backups-a/"
    )
    assert url.startswith(f"http://{expected}k?"), url
    arrow = settings.pyarrow_filesystem().__reduce__()[1][0]  # the options it was built with
    assert (arrow["region"], arrow["endpoint_override"]) == ("cn-bingo-1", "s3.example.test:9000")
    assert arrow["force_virtual_addressing"] is (addressing == "virtual")


def test_object_lock_retention_is_set_on_every_object(moto_s3: str) -> None:
    locked = S3Case(moto_s3, "locked", object_lock_mode="governance", retention_days=30)
    try:
        locked.s3.verify()
        locked.store.put("chunks/ab/ab01", b"immutable")
        writer = locked.store.open_append("packs/s1/v1.pack")
        writer.write(b"p" * (6 << 20))
        writer.commit()
        for key in ("pools/p1/chunks/ab/ab01", "pools/p1/packs/s1/v1.pack"):
            head = locked.direct.head_object(Bucket=locked.settings.bucket, Key=key)
            assert head["ObjectLockMode"] == "GOVERNANCE"
            days = (head["ObjectLockRetainUntilDate"] - datetime.now(UTC)).total_seconds() / 86400
            assert 29 < days <= 30
    finally:
        locked.close()


def test_object_lock_is_refused_clearly_when_the_bucket_has_none(moto_s3: str) -> None:
    settings = s3_settings(moto_s3, new_bucket(moto_s3), object_lock_mode="compliance", retention_days=7)
    with pytest.raises(PoolError, match=r"has no S3 Object Lock.*Create the bucket with Object Lock enabled"):
        S3BlobStore(settings, "no-lock").verify()


def test_secret_key_never_shows(moto_s3: str) -> None:
    settings = s3_settings(moto_s3, "no-such-bucket-here", secret_access_key="s3cr3t-value")
    store = S3BlobStore(settings, "object-pool")
    with pytest.raises(PoolError) as caught:
        store.verify()
    for text in (repr(settings), str(settings), repr(store), str(caught.value), settings.model_dump_json()):
        assert "s3cr3t-value" not in text
    assert MOTO_KEYS["aws_access_key_id"] == settings.access_key_id


def test_half_given_credentials_and_lock_without_retention_are_refused() -> None:
    with pytest.raises(ValueError, match="both the S3 access key id and the secret access key"):
        s3_settings("http://127.0.0.1:9", "bucket", secret_access_key=None)
    with pytest.raises(ValueError, match="needs --retention-days"):
        s3_settings("http://127.0.0.1:9", "bucket", object_lock_mode="governance")
