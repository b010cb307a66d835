"""The session's moto S3 server as tests use it: a client, fresh buckets, pool settings."""

from __future__ import annotations

import uuid
from typing import Any

import boto3

from bingobackup.storage.s3config import MIN_PART_SIZE, S3Settings

MOTO_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def moto_client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **MOTO_KEYS)


def new_bucket(endpoint: str, *, object_lock: bool = False, prefix: str = "pool") -> str:
    bucket = f"{prefix}-{uuid.uuid4().hex[:16]}"
    moto_client(endpoint).create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=object_lock)
    return bucket


def s3_settings(endpoint: str, bucket: str, **overrides: Any) -> S3Settings:
    fields: dict[str, Any] = {
        "bucket": bucket,
        "prefix": "pools/p1",
        "endpoint_url": endpoint,
        "access_key_id": MOTO_KEYS["aws_access_key_id"],
        "secret_access_key": MOTO_KEYS["aws_secret_access_key"],
        "part_size": MIN_PART_SIZE,
        "max_attempts": 2,  # rides out one transient error, and gives up quickly on a persistent fault
    }
    return S3Settings.model_validate(fields | overrides)
