"""Where a backed-up disk's bytes live: the per-disk chunk manifest.

A disk backup is a fixed-size chunk index (as Proxmox Backup Server's `.fidx`): chunk `i`
covers disk bytes `[i * chunk_size, i * chunk_size + length)`. Chunks that were all zero or
holes are absent from the manifest and read back as zeros (restored as holes).

Where each chunk belongs is said by the manifest alone, so from format version 3 on it is
sealed (docs/format.md): a BLAKE3-256 of `SEAL_LABEL`, the pool id and the manifest's canonical
JSON, keyed with a subkey of the master key in an encrypted pool (so only the passphrase's
holder can make one), unkeyed otherwise (it then detects damage and edits by tools that do not
recompute it, not a deliberate forger: an unencrypted pool holds no secret to key it with).
"""

from __future__ import annotations

import json

import blake3
from pydantic import BaseModel, ConfigDict, Field

from bingobackup.format.constants import SEAL_FIELD, SEAL_LABEL


class ChunkRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    offset: int = Field(ge=0, description="byte offset of the chunk in the disk")
    length: int = Field(gt=0, description="plaintext length (the last chunk may be short)")
    digest: str = Field(description="hex chunk id (keyed when the pool is encrypted)")
    stored_size: int = Field(ge=0, description="bytes this chunk occupies in the pool (envelope included)")
    location: str = Field(default="", description="pool-specific: blob key, or pack name and offset")


class DiskManifest(BaseModel):
    model_config = ConfigDict(frozen=True)

    set_id: str
    volume_id: str
    size_bytes: int = Field(ge=0)
    chunk_size: int = Field(gt=0)
    chunks: tuple[ChunkRef, ...] = ()

    @property
    def stored_bytes(self) -> int:
        return sum(c.stored_size for c in self.chunks)

    @property
    def data_bytes(self) -> int:
        return sum(c.length for c in self.chunks)


def canonical_json(manifest: DiskManifest) -> bytes:
    """The bytes a seal covers: sorted keys, no spaces, ASCII; the same for equal manifests."""
    body = manifest.model_dump(mode="json")
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def manifest_seal(manifest: DiskManifest, pool_id: str, key: bytes | None) -> str:
    """64 hex: binds every chunk's offset, length and id, the disk's size and its set and volume
    ids to this pool; keyed BLAKE3 with `key` (the manifest-seal subkey) when there is one."""
    data = SEAL_LABEL + pool_id.encode("ascii") + b"\x00" + canonical_json(manifest)
    return (blake3.blake3(data, key=key) if key is not None else blake3.blake3(data)).hexdigest()


def sealed_json(manifest: DiskManifest, seal: str) -> bytes:
    """The manifest as stored (`manifests/…json`, a media stream's trailer): its fields and `seal`."""
    return json.dumps(manifest.model_dump(mode="json") | {SEAL_FIELD: seal}, separators=(",", ":")).encode()


def first_difference(sealed: DiskManifest, indexed: DiskManifest) -> tuple[int | None, str] | None:
    """Where an index of a disk (the catalog's rows) departs from its sealed manifest: (disk
    offset, or None for the disk as a whole; what differs), or None when they agree on every
    chunk's place, length and id and on the disk's size."""
    for field in ("set_id", "volume_id", "size_bytes", "chunk_size"):
        mine, theirs = getattr(sealed, field), getattr(indexed, field)
        if mine != theirs:
            return None, f"{field} is {theirs} in the catalog and {mine} in the manifest"
    ours = {ref.offset: ref for ref in sealed.chunks}
    listed: dict[int, ChunkRef] = {}
    for ref in indexed.chunks:
        if listed.setdefault(ref.offset, ref) is not ref:
            return ref.offset, "the catalog lists two chunks there"
    for offset in sorted(ours.keys() | listed.keys()):
        mine, theirs = ours.get(offset), listed.get(offset)
        if mine is None:
            return offset, "the catalog lists a chunk there that the manifest does not have"
        if theirs is None:
            return offset, "the manifest has a chunk there that the catalog does not list"
        if (mine.digest, mine.length) != (theirs.digest, theirs.length):
            return offset, (
                f"the catalog has chunk {theirs.digest} ({theirs.length} bytes) there, the manifest "
                f"chunk {mine.digest} ({mine.length} bytes)"
            )
    return None
