"""A streamed S3 blob (rule 8 of base.py): a multipart upload, visible only when completed.

Bytes are buffered up to one part (S3 wants every part but the last to be >= 5 MiB); the
upload begins with the first full part, so a blob smaller than one part is a single
PutObject on commit. Memory per writer: one part.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from bingobackup.storage._s3common import EXISTS_CODES, S3WriteHost, Written, error_code, md5_of
from bingobackup.storage.base import BlobData, BlobWriter, as_parts
from bingobackup.storage.errors import is_permanent_error


class S3BlobWriter(BlobWriter):
    def __init__(self, store: S3WriteHost, key: str, object_key: str) -> None:
        self._store = store
        self._key = key
        self._object = object_key
        self._buffer = bytearray()
        self._size = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        # Each part's MD5: tells a retried upload of the same blob from a different one (rule 2).
        self._md5s: list[bytes] = []
        self._state: Literal["open", "committed", "aborted"] = "open"

    @property
    def size(self) -> int:
        return self._size

    def _check_open(self) -> None:
        if self._state != "open":
            raise ValueError(f"the writer of {self._key} is already {self._state}")

    def write(self, data: BlobData) -> int:
        self._check_open()
        offset = self._size
        for part in as_parts(data):
            view = memoryview(part).cast("B")
            self._buffer += view
            self._size += len(view)
        part_size = self._store.settings.part_size
        while len(self._buffer) >= part_size:
            self._upload_part(bytes(self._buffer[:part_size]))
            del self._buffer[:part_size]
        return offset

    def _fail(self, error: Exception, doing: str, needed: int) -> Exception:
        self.abort()
        return self._store.translate_error(error, doing, self._key, needed)

    def _upload_part(self, body: bytes) -> None:
        store, bucket = self._store, self._store.settings.bucket
        try:
            if self._upload_id is None:
                answer = store.client.create_multipart_upload(
                    Bucket=bucket, Key=self._object, **store.write_options()
                )
                self._upload_id = answer["UploadId"]
            number = len(self._parts) + 1
            digest = md5_of(body)
            extra = store.write_options(md5=digest)
            md5 = {"ContentMD5": extra["ContentMD5"]} if "ContentMD5" in extra else {}
            answer = store.client.upload_part(
                Bucket=bucket,
                Key=self._object,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
                **md5,
            )
        except (ClientError, BotoCoreError) as error:
            translated = self._store.translate_error(error, "write", self._key, len(body))
            if is_permanent_error(translated):
                self.abort()
            # A lost link keeps the upload and the unsent bytes: the owner may `rewind`.
            raise translated from None
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        self._md5s.append(digest)

    def rewind(self, size: int) -> int:
        """Parts already uploaded stay (S3 acknowledged them); the buffer is cut back."""
        self._check_open()
        uploaded = self._size - len(self._buffer)
        if size > self._size:
            raise ValueError(f"cannot rewind {self._key} to byte {size}: only {self._size} were written")
        keep = max(size, uploaded)
        del self._buffer[keep - uploaded :]
        self._size = keep
        return keep

    def commit(self) -> None:
        self._check_open()
        if self._upload_id is None:
            body = bytes(self._buffer)
            self._state = "committed"
            self._buffer = bytearray()
            try:
                self._store.put(self._key, body)
            except BaseException:
                self._state = "aborted"
                raise
            return
        if self._buffer or not self._parts:
            self._upload_part(bytes(self._buffer))
            self._buffer = bytearray()
        store = self._store
        written = Written(self._size, store.settings.part_size, tuple(self._md5s), multipart=True)
        if store.already_holds(self._key, written):
            self.abort()
            self._state = "committed"
            return
        options: dict[str, Any] = {"IfNoneMatch": "*"} if store.settings.conditional_writes else {}
        try:
            store.client.complete_multipart_upload(
                Bucket=store.settings.bucket,
                Key=self._object,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
                **options,
            )
        except ClientError as error:
            if error_code(error) not in EXISTS_CODES:
                raise self._fail(error, "complete the upload of", self._size) from None
            self.abort()
            store.settle_existing(self._key, written, error)
        except BotoCoreError as error:
            raise self._fail(error, "complete the upload of", self._size) from None
        self._state = "committed"
        self._lock_completed()

    def _lock_completed(self) -> None:
        """Sets the retention again on the completed object: some S3-compatible services (and
        moto) drop the Object Lock headers of CreateMultipartUpload; extending is always allowed."""
        store = self._store
        options = store.write_options()
        if not options:
            return
        store.call_s3(
            "set the retention of",
            self._key,
            store.client.put_object_retention,
            Bucket=store.settings.bucket,
            Key=self._object,
            Retention={
                "Mode": options["ObjectLockMode"],
                "RetainUntilDate": options["ObjectLockRetainUntilDate"],
            },
        )

    def abort(self) -> None:
        if self._state != "open":
            return
        self._state = "aborted"
        self._buffer = bytearray()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is None:
            return
        # If this fails too, the parts stay invisible (no object appears) and a lifecycle rule
        # AbortIncompleteMultipartUpload reclaims them; the first error is the one to report.
        with contextlib.suppress(ClientError, BotoCoreError):
            self._store.client.abort_multipart_upload(
                Bucket=self._store.settings.bucket, Key=self._object, UploadId=upload_id
            )
