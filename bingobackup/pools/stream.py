"""The self-describing stream a disk backup is written as on sequential media (tape, optical).

A stream is records (tag u8, payload length u32 big-endian, payload):

    H  header   JSON {set_id, volume_id, pool_id, part}
    C  chunk    disk offset u64, envelope length u32, chunk id 32 bytes, the envelope
    T  trailer  the disk's manifest (JSON), only at the end of the last part

Chunk records are framed exactly as in a standard pool's pack, so a medium read without the
catalog rebuilds every manifest from its trailers.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Iterator

from bingobackup.format.manifest import DiskManifest
from bingobackup.pools.base import Buffer
from bingobackup.pools.pool import Pool
from bingobackup.pools.standard import _RECORD

TAG = struct.Struct(">cI")
HEADER, CHUNK, TRAILER = b"H", b"C", b"T"


def record(tag: bytes, payload: bytes) -> bytes:
    return TAG.pack(tag, len(payload)) + payload


def header_record(set_id: str, volume_id: str, pool_id: str, part: int) -> bytes:
    fields = {"set_id": set_id, "volume_id": volume_id, "pool_id": pool_id, "part": part}
    return record(HEADER, json.dumps(fields).encode())


def chunk_record(offset: int, stored_size: int, digest: str, parts: tuple[Buffer, ...]) -> bytes:
    return record(CHUNK, _RECORD.pack(offset, stored_size, bytes.fromhex(digest)) + b"".join(parts))


def parse_stream(data: bytes) -> Iterator[tuple[bytes, int, bytes]]:
    """(tag, offset of the payload, payload) of every complete record of a stream file."""
    position = 0
    while position + TAG.size <= len(data):
        tag, length = TAG.unpack_from(data, position)
        start = position + TAG.size
        if start + length > len(data):
            return  # an aborted stream's tail
        yield tag, start, data[start : start + length]
        position = start + length


def recover_manifests(pool: Pool, files: Iterable[bytes]) -> list[tuple[str, str]]:
    """`pool scan` for sequential media: saves the manifest of every complete disk stream of
    `pool` found in `files` (one medium file each) that the pool does not hold yet; returns
    the (set_id, volume_id) of every one found. Streams of other pools are ignored."""
    found: list[tuple[str, str]] = []
    for data in files:
        ours = False
        for tag, _, payload in parse_stream(data):
            if tag == HEADER:
                ours = json.loads(payload).get("pool_id") == pool.config.pool_id
            elif tag == TRAILER and ours:
                manifest = DiskManifest.model_validate_json(payload)
                if not pool.store.exists(pool.manifest_key(manifest.set_id, manifest.volume_id)):
                    pool.save_manifest(manifest)
                found.append((manifest.set_id, manifest.volume_id))
    return found
