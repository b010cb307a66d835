"""The blob stores the conformance suites run over, each with the same test handles: make
writes fail (`fail_with`), count the failures, list leftovers a failed write might leave,
and read or damage stored bytes behind the store's back (bit rot on the medium)."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from bingobackup.pools import BlobStore, LocalDirBlobStore
from bingobackup.storage.s3store import S3BlobStore
from support.faulty_store import FaultyBlobStore
from support.pools import temp_files
from support.s3 import moto_client, new_bucket, s3_settings
from support.s3_faults import FaultProxy


class StoreCase(ABC):
    store: BlobStore

    @abstractmethod
    def fail_with(self, code: int | None) -> None:
        """Arm (errno) or disarm (None) a fault on every write from now on."""

    @property
    @abstractmethod
    def failures(self) -> int: ...

    @abstractmethod
    def leftovers(self) -> list[str]:
        """Traces of unfinished writes (temp files, incomplete multipart uploads)."""

    @abstractmethod
    def fresh_store(self) -> BlobStore:
        """A new store object over the same blobs (what another process would open)."""

    @abstractmethod
    def read_raw(self, key: str) -> bytes: ...

    @abstractmethod
    def write_raw(self, key: str, data: bytes) -> None:
        """Replaces a blob's bytes behind the store's back (the medium rotted)."""

    def snapshot(self) -> dict[str, str]:
        return {i.key: hashlib.sha256(self.read_raw(i.key)).hexdigest() for i in self.store.list("")}

    def close(self) -> None:  # noqa: B027 - only remote stores have something to close
        pass


class LocalCase(StoreCase):
    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.store = self.faulty = FaultyBlobStore(root, name)

    def fail_with(self, code: int | None) -> None:
        self.faulty.fail_with(code)

    @property
    def failures(self) -> int:
        return self.faulty.failures

    def leftovers(self) -> list[str]:
        return [str(p) for p in temp_files(self.root)]

    def fresh_store(self) -> BlobStore:
        return LocalDirBlobStore(self.root, self.store.name)

    def read_raw(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def write_raw(self, key: str, data: bytes) -> None:
        (self.root / key).write_bytes(data)


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
