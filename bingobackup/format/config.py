"""The pool config: `config.json` at the root of every pool, the first thing read.

It says what the pool is (magic, format version, kind, chunk size, algorithms) and, for an
encrypted pool, holds the wrapped master key. It is written atomically (temp, fsync,
rename) and changes only on a passphrase change or `pool upgrade`. Only the wrapped key and the
pool id are authenticated (the key's associated data); whoever can write the pool's storage can
edit the rest, so a config whose cipher, digest and key fields contradict each other is refused
(docs/format.md, "Threat model").
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bingobackup.format.compression import CompressionSetting
from bingobackup.format.constants import FORMAT_VERSION, POOL_MAGIC
from bingobackup.format.crypto import CipherId, WrappedKey
from bingobackup.format.digest import DigestId
from bingobackup.format.errors import FormatError, UnsupportedFormatError

MIN_CHUNK_SIZE = 64 << 10
MAX_CHUNK_SIZE = 64 << 20
DEFAULT_CHUNK_SIZE = 4 << 20

PoolKind = Literal["dedup", "standard"]


def check_chunk_size(value: int) -> int:
    if value < MIN_CHUNK_SIZE or value > MAX_CHUNK_SIZE or value & (value - 1):
        raise ValueError(
            f"chunk size {value} must be a power of two between {MIN_CHUNK_SIZE} (64 KiB) "
            f"and {MAX_CHUNK_SIZE} (64 MiB); 4 MiB is the default"
        )
    return value


class PoolConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    magic: Literal["BINGOBACKUP-POOL"] = "BINGOBACKUP-POOL"
    format_version: int = Field(default=FORMAT_VERSION, ge=1)
    pool_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    name: str
    kind: PoolKind
    chunk_size: int = DEFAULT_CHUNK_SIZE
    compression: CompressionSetting = "fast"
    digest: int = Field(description="digest algorithm id (digest.py)")
    cipher: int = Field(description="cipher id (crypto.py)")
    key: WrappedKey | None = Field(default=None, description="the wrapped master key when encrypted")
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    _check_chunk_size = field_validator("chunk_size")(check_chunk_size)

    @field_validator("digest")
    @classmethod
    def _known_digest(cls, value: int) -> int:
        DigestId(value)
        return value

    @field_validator("cipher")
    @classmethod
    def _known_cipher(cls, value: int) -> int:
        CipherId(value)
        return value

    @property
    def encrypted(self) -> bool:
        return self.cipher != CipherId.NONE

    def to_json(self) -> bytes:
        return (self.model_dump_json(indent=2) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, where: str) -> PoolConfig:
        """Parses a config; errors name `where` and say what to do."""
        try:
            raw = json.loads(data)
        except ValueError:
            raise FormatError(
                f"{where} is not valid JSON; restore the pool's config.json from a copy"
            ) from None
        if not isinstance(raw, dict) or raw.get("magic") != POOL_MAGIC:
            raise FormatError(f"{where} is not a bingobackup pool config (no {POOL_MAGIC} magic)")
        version = raw.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise UnsupportedFormatError(
                f"{where} has pool format version {version}; this bingobackup reads versions up to "
                f"{FORMAT_VERSION}: upgrade bingobackup to use this pool"
            )
        try:
            config = cls.model_validate(raw)
        except ValidationError as error:
            raise FormatError(
                f"{where} is damaged: {error.errors()[0]['msg']}; restore it from a copy"
            ) from None
        mismatch = config.protection_mismatch()
        if mismatch:
            raise FormatError(
                f"{where} was edited or damaged: {mismatch}, which no bingobackup writes (an encrypted "
                "pool keys its chunk ids and wraps its key; a plain one does neither). Nothing was read "
                "or written; restore config.json from a copy of the pool"
            )
        return config

    def protection_mismatch(self) -> str:
        """What contradicts itself in the cipher, digest and key fields ("" when nothing). They
        are not authenticated (only the wrapped key and pool id are), so an edit that weakens one
        of them, such as unkeyed chunk ids in an encrypted pool, is refused here."""
        keyed = self.digest == DigestId.BLAKE3_KEYED
        if self.encrypted and not keyed:
            return f"cipher {self.cipher} (encrypted) with digest {self.digest} (unkeyed chunk ids)"
        if self.encrypted and self.key is None:
            return f"cipher {self.cipher} (encrypted) without a wrapped key"
        if not self.encrypted and keyed:
            return f"cipher {self.cipher} (not encrypted) with digest {self.digest} (keyed chunk ids)"
        if not self.encrypted and self.key is not None:
            return f"cipher {self.cipher} (not encrypted) with a wrapped key"
        return ""
