"""The content layer shared by every pool kind: chunks in envelopes, manifests, reading back.

A `Pool` sits on a `BlobStore` (base.py) and is opened from its config (open.py). Pool kinds
differ only in where a disk's chunks go: one content-addressed blob per chunk shared by all
backups (dedup.py), or one pack per disk backup (standard.py).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import ClassVar

from bingobackup.format.config import PoolConfig
from bingobackup.format.envelope import EnvelopeCodec
from bingobackup.format.manifest import ChunkRef, DiskManifest
from bingobackup.format.zero import is_zero
from bingobackup.pools.base import BlobStore
from bingobackup.pools.errors import BlobNotFoundError, PoolError
from bingobackup.pools.writer import ZERO_LOCATION, DiskWriter

MANIFESTS = "manifests"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}")


def check_name(what: str, value: str) -> str:
    """Set and volume ids become path components: keep them to safe characters."""
    if not _NAME.fullmatch(value):
        raise ValueError(f"{what} {value!r} must be 1-200 letters, digits or ._:@+- and not start with a dot")
    return value


class Pool(ABC):
    """An open pool. Thread-safe. Secrets (the keys inside `codec`) never show in repr."""

    kind: ClassVar[str]

    def __init__(self, store: BlobStore, config: PoolConfig, codec: EnvelopeCodec) -> None:
        self.store = store
        self.config = config
        self.codec = codec

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, encrypted={self.config.encrypted})"

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def chunk_size(self) -> int:
        return self.config.chunk_size

    @staticmethod
    def is_zero(chunk: bytes | bytearray | memoryview) -> bool:
        return is_zero(chunk)

    def chunk_digest(self, plaintext: bytes | bytearray | memoryview) -> str:
        """The chunk id (keyed in an encrypted pool, so it differs from pool to pool)."""
        return self.codec.digester.hexdigest(plaintext)

    # -- writing -------------------------------------------------------------------------
    @abstractmethod
    def open_disk_writer(self, set_id: str, volume_id: str, size_bytes: int) -> DiskWriter: ...

    # -- reading -------------------------------------------------------------------------
    @abstractmethod
    def _read_envelope(self, ref: ChunkRef) -> bytes: ...

    def _read_packed(self, ref: ChunkRef) -> bytes:
        """The envelope at a `<pack key>@<offset>` location (standard and dedup packs)."""
        key, _, offset = ref.location.rpartition("@")
        if not key or not offset.isdigit():
            raise PoolError(f"chunk {ref.digest} has location {ref.location!r}, not <pack>@<offset>")
        return self.store.get(key, int(offset), ref.stored_size)

    def read_chunk(self, ref: ChunkRef) -> bytes:
        """The chunk's plaintext, verified against `ref.digest` (CorruptChunkError otherwise)."""
        if ref.location == ZERO_LOCATION:
            return bytes(ref.length)
        envelope = self._read_envelope(ref)
        return self.codec.open(envelope, ref.digest, f"{self.name}:{ref.location}")

    def iter_disk(self, manifest: DiskManifest) -> Iterator[tuple[ChunkRef, bytes]]:
        """(ref, plaintext) of every stored chunk in disk order; gaps read as zeros."""
        for ref in manifest.chunks:
            yield ref, self.read_chunk(ref)

    # -- manifests -----------------------------------------------------------------------
    @staticmethod
    def manifest_key(set_id: str, volume_id: str) -> str:
        return f"{MANIFESTS}/{check_name('set id', set_id)}/{check_name('volume id', volume_id)}.json"

    def save_manifest(self, manifest: DiskManifest) -> None:
        self.store.put(
            self.manifest_key(manifest.set_id, manifest.volume_id), manifest.model_dump_json().encode()
        )

    def load_manifest(self, set_id: str, volume_id: str) -> DiskManifest:
        try:
            data = self.store.get(self.manifest_key(set_id, volume_id))
        except BlobNotFoundError:
            raise PoolError(
                f"pool {self.name} holds no backup of volume {volume_id} in set {set_id}; "
                "list what it holds with `bingobackup catalog query`"
            ) from None
        return DiskManifest.model_validate_json(data)

    def list_manifests(self) -> Iterator[tuple[str, str]]:
        """(set_id, volume_id) of every committed disk backup."""
        for info in self.store.list(f"{MANIFESTS}/"):
            _, set_id, file_name = info.key.split("/", 2)
            if file_name.endswith(".json"):
                yield set_id, file_name.removesuffix(".json")

    def delete_set(self, set_id: str) -> int:
        """Removes a backup set's manifests (and the data only it uses); returns blobs removed."""
        removed = 0
        for info in list(self.store.list(f"{MANIFESTS}/{check_name('set id', set_id)}/")):
            self.store.delete(info.key)
            removed += 1
        return removed + self._delete_set_data(set_id)

    def _delete_set_data(self, set_id: str) -> int:
        return 0
