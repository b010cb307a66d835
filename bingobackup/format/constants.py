"""Every constant written to a pool or a medium: magic numbers, format versions, record
layouts, key-derivation labels and the names of a pool's top-level folders.

NEVER CHANGE A VALUE IN THIS MODULE. Pools written years ago must still read: a changed magic,
label or record layout makes every existing pool, cartridge and disc unreadable (golden pools in
tests/fixtures check this). A new format adds a new constant and a new version number next to
the old ones; the readers keep understanding every version listed here (docs/format.md). Only
the modules of `bingobackup/format/` and the pool and media code import this module; the values
are grouped by what they describe, each with the version that introduced it.
"""

from __future__ import annotations

import struct
from typing import Final

# -- the pool's config (config.json) ---------------------------------------------------------
POOL_MAGIC: Final = "BINGOBACKUP-POOL"
CONFIG_NAME: Final = "config.json"
# Versions of the pool format, each a superset the readers of the next still understand:
PACKED_FORMAT: Final = 2  # dedup pools write packs (data/), not one file per chunk (chunks/)
SEALED_FORMAT: Final = 3  # manifests are sealed; the wrapped key is bound to that
LOCKED_FORMAT: Final = 4  # every writer holds a pool lock, so GC may run while backups do
FORMAT_VERSION: Final = 4  # what a new pool is created with

# -- a pool's top-level folders (blob key prefixes) ------------------------------------------
CHUNKS: Final = "chunks"  # format 1 dedup chunks, one blob each (content-addressed)
DATA: Final = "data"  # dedup packs (format 2+)
INDEX_BLOBS: Final = "index"  # dedup pack-index blobs
PACKS: Final = "packs"  # standard pools: one pack per disk of a backup set
MANIFESTS: Final = "manifests"
LOCKS: Final = "locks"
GARBAGE: Final = "gc"  # condemned packs and the waits of garbage collection
CONDEMNED_SUFFIX: Final = ".condemned"
WAITS_SUFFIX: Final = ".waits"
# A chunk ref's location for an all-zero chunk: stored as nothing, never in a manifest.
ZERO_LOCATION: Final = "zero:"

# -- key derivation and sealing labels (crypto.py, manifest.py) ------------------------------
WRAP_LABEL: Final = b"BINGOBACKUP-POOL master key v1\x00"
WRAP_LABEL_SEALED: Final = b"BINGOBACKUP-POOL master key v3\x00"
CHUNK_ID_INFO: Final = b"bingobackup v1 chunk-id key"
CHUNK_AEAD_INFO: Final = b"bingobackup v1 chunk-aead key"
MANIFEST_SEAL_INFO: Final = b"bingobackup v3 manifest-seal key"
SEAL_FIELD: Final = "seal"
SEAL_LABEL: Final = b"bingobackup manifest seal v1\x00"

# -- the chunk envelope (envelope.py) --------------------------------------------------------
ENVELOPE_MAGIC: Final = b"BBCH"
ENVELOPE_VERSION: Final = 1
# magic, version, compression id, cipher id, flags, plaintext length, payload length, nonce
ENVELOPE_HEADER: Final = struct.Struct(">4sBBBBII12s")

# -- packs (packs.py: dedup; standard.py: standard) ------------------------------------------
PACK_MAGIC: Final = b"BBPACK"  # both pack kinds; the version after it tells them apart
STANDARD_PACK_VERSION: Final = 1
STANDARD_PACK_HEADER: Final = PACK_MAGIC + struct.pack(">H", STANDARD_PACK_VERSION)
DEDUP_PACK_VERSION: Final = 2
DEDUP_PACK_HEADER: Final = PACK_MAGIC + struct.pack(">H", DEDUP_PACK_VERSION)
PACK_INDEX_MAGIC: Final = b"BBPINDEX"
PACK_INDEX_ENTRY: Final = struct.Struct(">32sQI")  # digest, offset, stored size
PACK_FOOTER: Final = struct.Struct(">I8s")  # index length, PACK_INDEX_MAGIC
INDEX_BLOB_HEADER: Final = b"BBINDX" + struct.pack(">H", 1)
INDEX_BLOB_RECORD: Final = struct.Struct(">16sQI")  # pack id, offset, stored size
# A standard pack's and a media stream's chunk record: disk offset, stored size, digest.
CHUNK_RECORD: Final = struct.Struct(">QI32s")

# -- streams on removable media (stream.py) --------------------------------------------------
STREAM_TAG: Final = struct.Struct(">cI")  # record kind, payload length
STREAM_HEADER: Final = b"H"
STREAM_CHUNK: Final = b"C"
STREAM_TRAILER: Final = b"T"
STREAM_POOL_CONFIG: Final = b"P"
STREAM_CATALOG: Final = b"K"

# -- the emulated tape cartridge file (tapelib.py) -------------------------------------------
TAPE_RECORD: Final = struct.Struct(">cI")  # kind, payload length; a block is padded to block_size
TAPE_BLOCK: Final = b"B"
TAPE_FILEMARK: Final = b"M"
TAPE_LIBRARY_FILE: Final = "library.json"

# -- optical discs (discs.py) ----------------------------------------------------------------
OPTICAL_FILE: Final = "optical.json"
DISC_INFO: Final = "DISC.JSN"
