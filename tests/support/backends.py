"""The S3 store case of the conformance suites (over moto, behind a fault proxy), beside the
local one of bingobackup/storage/testing/cases.py; the blob stores the suites run over, each with the same test handles: make
writes fail (`fail_with`), count the failures, list leftovers a failed write might leave,
and read or damage stored bytes behind the store's back (bit rot on the medium)."""

from __future__ import annotations

from typing import Any

from bingobackup.pools import BlobStore
from bingobackup.storage.s3store import S3BlobStore
from bingobackup.storage.testing.cases import StoreCase
from support.s3 import moto_client, new_bucket, s3_settings
from support.s3_faults import FaultProxy


class S3Case(StoreCase):
    """An S3 store in a fresh bucket of the session's moto server, behind a fault proxy."""

    def __init__(self, moto_endpoint: str, name: str, **overrides: Any) -> None:
        self.direct = moto_client(moto_endpoint)
        self.proxy = FaultProxy(moto_endpoint)
        # A pool without conditional writes must never send one: the proxy refuses them.
        self.proxy.refuse_conditional_writes = overrides.get("conditional_writes") is False
        self.settings = s3_settings(
            self.proxy.endpoint,
            new_bucket(moto_endpoint, object_lock="object_lock_mode" in overrides),
            **overrides,
        )
        self.store = self.s3 = S3BlobStore(self.settings, name)

    def fail_with(self, code: int | None) -> None:
        self.proxy.fail_uploads(code)

    @property
    def failures(self) -> int:
        return self.proxy.failures

    def leftovers(self) -> list[str]:
        return self.s3.incomplete_uploads()

    def fresh_store(self) -> BlobStore:
        return S3BlobStore(self.settings, self.store.name)

    def read_raw(self, key: str) -> bytes:
        answer = self.direct.get_object(Bucket=self.settings.bucket, Key=self.settings.key_of(key))
        return bytes(answer["Body"].read())

    def write_raw(self, key: str, data: bytes) -> None:
        self.direct.put_object(Bucket=self.settings.bucket, Key=self.settings.key_of(key), Body=data)

    def close(self) -> None:
        self.proxy.close()
