"""A directory pool's files seen behind the pool's back: which chunks are stored, bit rot."""

from __future__ import annotations

from pathlib import Path

from bingobackup.format.manifest import ChunkRef
from bingobackup.pools import LocalDirBlobStore
from bingobackup.pools.packs import list_packs, read_pack_index


def stored_chunk_ids(pool_dir: Path) -> set[str]:
    """Ids of every durable chunk: blobs of their own (format 1) and packed ones (format 2)."""
    store = LocalDirBlobStore(pool_dir, pool_dir.name)
    ids = {info.key.rsplit("/", 1)[1] for info in store.list("chunks/")}
    return ids | {e.digest for info in list_packs(store) for e in read_pack_index(store, info)}


def damage_chunk(pool_dir: Path, ref: ChunkRef, at: int) -> None:
    """Flips byte `at` of the chunk's envelope (negative: counted from its end) in a directory
    pool, wherever the chunk lives: a blob of its own (`key`) or a pack (`key@offset`)."""
    key, _, offset = ref.location.partition("@")
    position = int(offset or 0) + (at if at >= 0 else ref.stored_size + at)
    with (pool_dir / key).open("r+b") as blob:
        blob.seek(position)
        byte = blob.read(1)[0]
        blob.seek(position)
        blob.write(bytes([byte ^ 0xFF]))
