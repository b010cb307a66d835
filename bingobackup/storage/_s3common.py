"""What the S3 store and its streamed writer share (private to the two): the service's error
code, the codes meaning "the object exists", an MD5, what a write meant to store, and the
store's side the writer calls. Its own module so neither of the two imports the other."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import ClientError

from bingobackup.storage.base import BlobData
from bingobackup.storage.s3config import S3Settings

EXISTS_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "")) or str(
        error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
    )


def md5_of(data: bytes | bytearray | memoryview) -> bytes:
    # MD5 is what S3 puts in ETags and Content-MD5, an integrity check and not a security one.
    return hashlib.md5(data, usedforsecurity=False).digest()


@dataclass(frozen=True)
class Written:
    """What a write meant to store: enough to tell whether an existing object holds it."""

    size: int
    part_size: int
    part_md5s: tuple[bytes, ...]
    multipart: bool

    @classmethod
    def single(cls, body: bytes) -> Written:
        return cls(len(body), max(len(body), 1), (md5_of(body),), multipart=False)

    @property
    def etag(self) -> str:
        """The ETag S3 gives these bytes written this way: the MD5 of a PutObject; for a multipart
        upload the MD5 of the parts' MD5s, then '-' and the number of parts."""
        if not self.multipart:
            return self.part_md5s[0].hex()
        return f"{hashlib.md5(b''.join(self.part_md5s), usedforsecurity=False).hexdigest()}-{len(self.part_md5s)}"


class S3WriteHost(Protocol):
    """The S3 store as its writer sees it (`S3BlobStore` implements it)."""

    settings: S3Settings
    client: Any

    def put(self, key: str, data: BlobData) -> None: ...

    def write_options(self, body: bytes | None = None, *, md5: bytes | None = None) -> dict[str, Any]: ...

    def already_holds(self, key: str, written: Written) -> bool: ...

    def translate_error(self, error: Exception, doing: str, key: str, needed: int = 0) -> Exception: ...

    def settle_existing(self, key: str, written: Written, error: ClientError | None) -> None: ...

    def call_s3(self, doing: str, key: str, method: Any, needed: int = 0, **kwargs: Any) -> Any: ...
