"""The on-media constants are pinned: a changed value makes every existing pool unreadable
(bingobackup/format/constants.py says never change them; this test is the second lock)."""

from __future__ import annotations

from bingobackup.format import constants

PINNED = {
    "POOL_MAGIC": "BINGOBACKUP-POOL",
    "CONFIG_NAME": "config.json",
    "PACKED_FORMAT": 2,
    "SEALED_FORMAT": 3,
    "LOCKED_FORMAT": 4,
    "CHUNKS": "chunks",
    "DATA": "data",
    "INDEX_BLOBS": "index",
    "PACKS": "packs",
    "MANIFESTS": "manifests",
    "LOCKS": "locks",
    "GARBAGE": "gc",
    "CONDEMNED_SUFFIX": ".condemned",
    "WAITS_SUFFIX": ".waits",
    "ZERO_LOCATION": "zero:",
    "WRAP_LABEL": b"BINGOBACKUP-POOL master key v1\x00",
    "WRAP_LABEL_SEALED": b"BINGOBACKUP-POOL master key v3\x00",
    "CHUNK_ID_INFO": b"bingobackup v1 chunk-id key",
    "CHUNK_AEAD_INFO": b"bingobackup v1 chunk-aead key",
    "MANIFEST_SEAL_INFO": b"bingobackup v3 manifest-seal key",
    "SEAL_FIELD": "seal",
    "SEAL_LABEL": b"bingobackup manifest seal v1\x00",
    "ENVELOPE_MAGIC": b"BBCH",
    "ENVELOPE_VERSION": 1,
    "PACK_MAGIC": b"BBPACK",
    "STANDARD_PACK_VERSION": 1,
    "STANDARD_PACK_HEADER": b"BBPACK\x00\x01",
    "DEDUP_PACK_VERSION": 2,
    "DEDUP_PACK_HEADER": b"BBPACK\x00\x02",
    "PACK_INDEX_MAGIC": b"BBPINDEX",
    "INDEX_BLOB_HEADER": b"BBINDX\x00\x01",
    "STREAM_HEADER": b"H",
    "STREAM_CHUNK": b"C",
    "STREAM_TRAILER": b"T",
    "STREAM_POOL_CONFIG": b"P",
    "STREAM_CATALOG": b"K",
    "TAPE_BLOCK": b"B",
    "TAPE_FILEMARK": b"M",
    "TAPE_LIBRARY_FILE": "library.json",
    "OPTICAL_FILE": "optical.json",
    "DISC_INFO": "DISC.JSN",
}
PINNED_LAYOUTS = {
    "ENVELOPE_HEADER": ">4sBBBBII12s",
    "PACK_INDEX_ENTRY": ">32sQI",
    "PACK_FOOTER": ">I8s",
    "INDEX_BLOB_RECORD": ">16sQI",
    "CHUNK_RECORD": ">QI32s",
    "STREAM_TAG": ">cI",
    "TAPE_RECORD": ">cI",
}


def test_every_on_media_value_is_what_existing_pools_hold() -> None:
    assert {name: getattr(constants, name) for name in PINNED} == PINNED
    assert {name: getattr(constants, name).format for name in PINNED_LAYOUTS} == PINNED_LAYOUTS


def test_new_pools_get_the_newest_format_version() -> None:
    assert (
        max(constants.PACKED_FORMAT, constants.SEALED_FORMAT, constants.LOCKED_FORMAT)
        == constants.FORMAT_VERSION
    )


def test_every_constant_is_pinned() -> None:
    """A constant added to the module is pinned here too (an unpinned one could drift)."""
    public = {name for name in vars(constants) if name.isupper()}
    assert public - {"FORMAT_VERSION"} == set(PINNED) | set(PINNED_LAYOUTS)
