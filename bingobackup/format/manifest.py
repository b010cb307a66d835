"""Where a backed-up disk's bytes live: the per-disk chunk manifest.

A disk backup is a fixed-size chunk index (as Proxmox Backup Server's `.fidx`): chunk `i`
covers disk bytes `[i * chunk_size, i * chunk_size + length)`. Chunks that were all zero or
holes are absent from the manifest and read back as zeros (restored as holes).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
