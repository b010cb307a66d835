"""A blob store in an S3-compatible bucket (BingoCloud object storage, MinIO, Ceph RGW, AWS).

Each blob is one object `<prefix>/<key>`. The rules of base.py map onto S3 as:

- put is one PutObject (atomic: an object is visible whole or not at all), or a multipart
  upload for blobs above the part size, visible only when CompleteMultipartUpload succeeds.
- Write-once: every write carries `If-None-Match: *`, so the service refuses to replace an
  object (with conditional writes off, for services without them, a HEAD before each write).
  A refused write is the idempotent re-put of rule 2 when the object holds the same bytes
  (its ETag is the MD5 we expect, or, where a service's ETags are not MD5s, reading it back
  matches); different bytes are an error naming the key and the old bytes stay. Nothing is
  ever rewritten, so versioned buckets and Object Lock keep exactly one version of everything.
- Throttling (SlowDown, 429) and 5xx are retried by botocore with exponential backoff and
  jitter; what still fails becomes StoreIOError (an OSError); a quota becomes PoolFullError.
- With Object Lock on, every object carries a retention date (and the Content-MD5 S3
  demands for it); a bucket without Object Lock is refused when the store is opened.
"""

from __future__ import annotations

import base64
import builtins
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, SSLError

from bingobackup.storage._s3common import EXISTS_CODES, Written, error_code, md5_of
from bingobackup.storage.base import (
    BackgroundPuts,
    BlobData,
    BlobInfo,
    BlobStore,
    BlobWriter,
    as_parts,
    check_key,
    is_content_addressed,
)
from bingobackup.storage.errors import (
    BlobNotFoundError,
    PoolError,
    PoolFullError,
    PoolNotFoundError,
    StoreIOError,
)
from bingobackup.storage.s3config import S3Settings
from bingobackup.storage.s3writer import S3BlobWriter

_MISSING = {"NoSuchKey", "404", "NotFound"}
_FULL = {"QuotaExceeded", "XMinioAdminBucketQuotaExceeded", "InsufficientStorage", "507"}
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "ExpiredToken"}
# What a service answers to a header it does not implement (If-None-Match before 2024).
_UNSUPPORTED = {"NotImplemented", "501"}
_WRITES = {"write", "complete the upload of"}
# put_soon: uploads in flight at once and blobs waiting for one (their bytes are held).
UPLOAD_THREADS = 4
UPLOAD_QUEUE = 4


class S3BlobStore(BlobStore):
    """Blobs as objects under `settings.prefix` in `settings.bucket`. Thread-safe (one boto3
    client, which is thread-safe; each writer owns its multipart upload)."""

    def __init__(self, settings: S3Settings, name: str, *, client: Any = None) -> None:
        self.settings = settings
        self.name = name
        self.client = client if client is not None else settings.boto3_client()
        self._background: BackgroundPuts | None = BackgroundPuts(
            f"upload-{name}", threads=UPLOAD_THREADS, queue=UPLOAD_QUEUE
        )

    @property
    def keeps_every_blob(self) -> bool:
        return self.settings.object_lock_mode is not None

    @property
    def replaces_blobs(self) -> bool:
        return False  # every write is If-None-Match: * (or looked up first)

    def __repr__(self) -> str:
        return f"S3BlobStore({self.settings.location!r}, endpoint={self.settings.endpoint_url!r})"

    # -- checks done once, when a pool is created or opened ---------------------------------
    def verify(self) -> None:
        """The bucket exists and our keys reach it; Object Lock is on when we rely on it."""
        self.call_s3("reach the bucket", "", self.client.head_bucket, Bucket=self.settings.bucket)
        if not self.settings.object_lock_mode:
            return
        try:
            answer = self.client.get_object_lock_configuration(Bucket=self.settings.bucket)
            enabled = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
        except ClientError as error:
            if error_code(error) not in ("ObjectLockConfigurationNotFoundError", "404", "NotImplemented"):
                raise self.translate_error(error, "read the Object Lock configuration", "") from None
            enabled = False
        if not enabled:
            raise PoolError(
                f"bucket {self.settings.bucket} of pool {self.name} has no S3 Object Lock, so backups "
                "could not be made undeletable. Create the bucket with Object Lock enabled (it can only "
                "be turned on at creation, or on a versioned bucket), or create the pool without "
                "--object-lock"
            )

    # -- helpers --------------------------------------------------------------------------
    def _object(self, key: str) -> str:
        return self.settings.key_of(check_key(key))

    def translate_error(self, error: Exception, doing: str, key: str, needed: int = 0) -> Exception:
        what = f"{key} in pool {self.name}" if key else f"pool {self.name}"
        where = f"{self.settings.location} at {self.settings.endpoint_url or 'AWS'}"
        if isinstance(error, ClientError):
            code = error_code(error)
            if code in _MISSING:
                return BlobNotFoundError(self.name, key)
            if code in _FULL:
                return PoolFullError(self.name, needed, f"the S3 service answered {code}")
            if code == "NoSuchBucket":
                return PoolNotFoundError(
                    f"bucket {self.settings.bucket} of pool {self.name} does not exist at "
                    f"{self.settings.endpoint_url or 'AWS'}; create it, or fix the pool's endpoint/bucket"
                )
            if code in _UNSUPPORTED and self.settings.conditional_writes and doing in _WRITES:
                return PoolError(
                    f"the S3 service at {where} does not support conditional writes (If-None-Match: *), "
                    f"which pool {self.name} uses so that the service itself refuses to replace an "
                    "object. Create the pool with --no-conditional-writes: bingobackup then looks each "
                    "key up before writing it"
                )
            if code in _DENIED:
                return PoolError(
                    f"S3 refused to {doing} {what} ({code}); check the pool's access key id and secret "
                    f"key and that they may read and write {where} (an Object Lock may also forbid "
                    "deleting before the retention date)"
                )
            return StoreIOError(
                f"S3 could not {doing} {what}: {code} after {self.settings.max_attempts} tries; check "
                f"that the service at {where} is healthy, then run again"
            )
        if isinstance(error, SSLError):
            return StoreIOError(
                f"S3 could not {doing} {what}: TLS to {where} failed ({error}); when the service's "
                "certificate is signed by a private CA, give that CA's PEM file with --ca-bundle "
                "(or, less safely, --no-verify-tls), then run again"
            )
        return StoreIOError(
            f"S3 could not {doing} {what}: {type(error).__name__} after {self.settings.max_attempts} "
            f"tries; check the network path and TLS settings to {where}, then run again"
        )

    def call_s3(self, doing: str, key: str, method: Any, needed: int = 0, **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except (ClientError, BotoCoreError) as error:
            raise self.translate_error(error, doing, key, needed) from None

    def write_options(self, body: bytes | None = None, *, md5: bytes | None = None) -> dict[str, Any]:
        """Headers every new object gets: the retention when locked (with the Content-MD5 S3
        demands for it, from `md5` when the caller already has the body's digest)."""
        options: dict[str, Any] = {}
        if self.settings.object_lock_mode:
            options["ObjectLockMode"] = self.settings.object_lock_mode.upper()
            until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=self.settings.retention_days)
            options["ObjectLockRetainUntilDate"] = until  # whole seconds: what S3 stores
            if md5 is None and body is not None:
                md5 = md5_of(body)
            if md5 is not None:
                options["ContentMD5"] = base64.b64encode(md5).decode()
        return options

    def already_holds(self, key: str, written: Written) -> bool:
        """Write-once without the service's help (conditional writes off): True when `key` is
        already stored with these bytes, so there is nothing to write; other bytes are refused
        as a conditional write would be. One HEAD per write: two hosts writing the same key at
        the same moment could both write, which for content-addressed chunks is the same bytes."""
        if self.settings.conditional_writes:
            return False
        try:
            self.settle_existing(key, written, None)
        except BlobNotFoundError:
            return False
        return True

    def settle_existing(self, key: str, written: Written, error: ClientError | None) -> None:
        """A write refused because the object exists: fine when it holds the same bytes (rule 2),
        an error naming the key when it does not (the object keeps its earlier bytes). With no
        `error` (nothing was written yet), a missing object raises BlobNotFoundError."""
        try:
            head = self.call_s3(
                "look up", key, self.client.head_object, Bucket=self.settings.bucket, Key=self._object(key)
            )
        except BlobNotFoundError:
            if error is None:
                raise
            raise self.translate_error(error, "write", key, written.size) from None
        if is_content_addressed(key):
            return  # a racing writer stored this chunk first: the same content (rule 2)
        existing = int(head["ContentLength"])
        etag = str(head.get("ETag", "")).strip('"')
        if existing == written.size and (etag == written.etag or self._holds(key, written)):
            return
        differs = f"{existing} bytes, not {written.size}" if existing != written.size else "other bytes"
        raise PoolError(
            f"pool {self.name} already holds {key} with {differs} than this write; objects in an S3 pool "
            "are written once and never replaced, so the stored object was kept and this write refused. "
            "Back the disk up under a new backup set id (a retry must not rewrite a finished disk)"
        )

    def _holds(self, key: str, written: Written) -> bool:
        """Reads the object back part by part: the service's ETag is not an MD5 we can predict
        (encryption at rest, another part size), yet the bytes may still be ours."""
        for number, md5 in enumerate(written.part_md5s):
            start = number * written.part_size
            length = min(written.part_size, written.size - start)
            if md5_of(self.get(key, start, length)) != md5:
                return False
        return True

    # -- BlobStore ------------------------------------------------------------------------
    def put(self, key: str, data: BlobData) -> None:
        parts = as_parts(data)
        size = sum(len(memoryview(p).cast("B")) for p in parts)
        if size > self.settings.part_size:
            writer = self.open_append(key)
            try:
                writer.write(parts)
                writer.commit()
            finally:
                writer.abort()
            return
        body = b"".join(parts)
        if self.already_holds(key, Written.single(body)):
            return
        options = self.write_options(body)
        if self.settings.conditional_writes:
            options["IfNoneMatch"] = "*"
        try:
            self.client.put_object(Bucket=self.settings.bucket, Key=self._object(key), Body=body, **options)
        except ClientError as error:
            if error_code(error) not in EXISTS_CODES:
                raise self.translate_error(error, "write", key, size) from None
            # The digest only now: computing it for every put would tax the data path for a rare case.
            self.settle_existing(key, Written.single(body), error)
        except BotoCoreError as error:
            raise self.translate_error(error, "write", key, size) from None

    def _start_put(self, key: str, data: BlobData, release: Callable[[], None] | None) -> _Upload:
        """The upload runs on a background thread, so the caller seals the next chunk while
        this one crosses the network. Joined here, in the caller's thread: the caller may
        reuse its buffers at once (rule 9), and put() would join them anyway."""
        upload = _Upload(self, check_key(key), b"".join(as_parts(data)))
        if release is not None:
            release()
        return upload

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        options: dict[str, Any] = {}
        if length == 0:
            self.stat(key)
            return b""
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            options["Range"] = f"bytes={offset}-{end}"
        answer = self.call_s3(
            "read", key, self.client.get_object, Bucket=self.settings.bucket, Key=self._object(key), **options
        )
        try:
            return bytes(answer["Body"].read())
        except (BotoCoreError, OSError) as error:
            raise self.translate_error(error, "read", key) from None

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except BlobNotFoundError:
            return False
        return True

    def stat(self, key: str) -> BlobInfo:
        answer = self.call_s3(
            "look up", key, self.client.head_object, Bucket=self.settings.bucket, Key=self._object(key)
        )
        return BlobInfo(key, int(answer["ContentLength"]))

    def retained_until(self, key: str) -> datetime | None:
        if not self.settings.object_lock_mode:
            return None
        answer = self.call_s3(
            "look up", key, self.client.head_object, Bucket=self.settings.bucket, Key=self._object(key)
        )
        until = answer.get("ObjectLockRetainUntilDate")
        return until if isinstance(until, datetime) else None

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        strip = len(self.settings.key_of(""))
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.settings.bucket, Prefix=self.settings.key_of(prefix))
        try:
            for page in pages:
                for item in page.get("Contents", ()):
                    yield BlobInfo(item["Key"][strip:], int(item["Size"]))
        except (ClientError, BotoCoreError) as error:
            raise self.translate_error(error, "list", prefix or "/") from None

    def delete(self, key: str) -> None:
        self.stat(key)  # S3 deletes are idempotent; rule 5 wants a missing blob reported
        self.call_s3(
            "delete", key, self.client.delete_object, Bucket=self.settings.bucket, Key=self._object(key)
        )

    def open_append(self, key: str) -> BlobWriter:
        return S3BlobWriter(self, key, self._object(key))

    def incomplete_uploads(self) -> builtins.list[str]:
        """Keys of multipart uploads begun and neither completed nor aborted (a crashed writer's
        leftovers; a bucket lifecycle rule AbortIncompleteMultipartUpload removes them)."""
        answer = self.call_s3(
            "list uploads of",
            "",
            self.client.list_multipart_uploads,
            Bucket=self.settings.bucket,
            Prefix=self.settings.key_of(""),
        )
        return [upload["Key"] for upload in answer.get("Uploads", ())]


@dataclass(frozen=True)
class _Upload:
    store: S3BlobStore
    key: str
    body: bytes

    def finish(self) -> None:
        self.store.put(self.key, self.body)

    redo = finish
