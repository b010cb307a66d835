"""The chunk envelope: what a reader does with chunks it cannot or must not trust."""

from __future__ import annotations

import os

import pytest

from bingobackup.format.compression import CompressionId, compress, decompress
from bingobackup.format.constants import ENVELOPE_VERSION
from bingobackup.format.crypto import PoolKeys, new_master_key
from bingobackup.format.digest import ChunkDigester, DigestId
from bingobackup.format.envelope import HEADER_BYTES, EnvelopeCodec, EnvelopeHeader, max_sealed_size
from bingobackup.format.errors import CorruptChunkError, UnsupportedFormatError

TEXT = b"disk sectors full of text " * 4000


def codecs() -> dict[str, EnvelopeCodec]:
    keys = PoolKeys(new_master_key())
    return {
        "plain": EnvelopeCodec(ChunkDigester(DigestId.BLAKE3), "fast", None),
        "aes": EnvelopeCodec(
            ChunkDigester(DigestId.BLAKE3_KEYED, keys.chunk_id_key), "fast", keys.chunk_aead
        ),
    }


def envelope(codec: EnvelopeCodec, data: bytes) -> bytes:
    return b"".join(bytes(p) for p in codec.seal(data).parts)


@pytest.mark.parametrize("name", ["plain", "aes"])
def test_seal_open_round_trip_and_header(name: str) -> None:
    codec = codecs()[name]
    sealed = envelope(codec, TEXT)
    header = EnvelopeHeader.parse(sealed)
    assert (header.version, header.compression, header.plaintext_length) == (1, CompressionId.ZSTD, len(TEXT))
    assert len(sealed) == HEADER_BYTES + header.payload_length < len(TEXT)
    assert codec.open(sealed, codec.digester.hexdigest(TEXT)) == TEXT


@pytest.mark.parametrize("name", ["plain", "aes"])
@pytest.mark.parametrize("data", [TEXT, os.urandom(70_000)], ids=["compressible", "random"])
def test_sealing_into_a_buffer_gives_an_envelope_that_opens(name: str, data: bytes) -> None:
    codec = codecs()[name]
    buffer = bytearray(b"\xee" * (max_sealed_size(len(data)) + 10))
    length = codec.seal_into(data, memoryview(buffer)[5:])
    sealed = bytes(buffer[5 : 5 + length])
    assert (
        buffer[:5] == b"\xee" * 5
        and len(sealed) == HEADER_BYTES + EnvelopeHeader.parse(sealed).payload_length
    )
    assert codec.open(sealed, codec.digester.hexdigest(data)) == data


def test_sealing_into_a_buffer_too_small_for_any_outcome_is_refused() -> None:
    codec = codecs()["aes"]
    with pytest.raises(ValueError, match="cannot hold the envelope of a 104000-byte chunk"):
        codec.seal_into(TEXT, memoryview(bytearray(max_sealed_size(len(TEXT)) - 1)))


@pytest.mark.parametrize("name", ["plain", "aes"])
def test_a_chunk_under_the_wrong_id_is_rejected(name: str) -> None:
    codec = codecs()[name]
    other = os.urandom(1000)
    with pytest.raises(CorruptChunkError, match="its content has digest") as caught:
        codec.open(envelope(codec, TEXT), codec.digester.hexdigest(other), "chunks/ab/x")
    assert caught.value.location == "chunks/ab/x"


def test_a_chunk_from_another_pool_fails_authentication() -> None:
    mine, theirs = codecs()["aes"], codecs()["aes"]
    with pytest.raises(CorruptChunkError, match="authentication failed"):
        mine.open(envelope(theirs, TEXT), mine.digester.hexdigest(TEXT))


def test_unknown_ids_and_versions_say_upgrade() -> None:
    codec = codecs()["plain"]
    sealed = bytearray(envelope(codec, TEXT))
    sealed[5] = 7  # compression id nobody defined
    with pytest.raises(UnsupportedFormatError, match=r"compression id 7 is unknown.*upgrade"):
        codec.open(bytes(sealed), codec.digester.hexdigest(TEXT))
    sealed[4] = ENVELOPE_VERSION + 1
    with pytest.raises(UnsupportedFormatError, match="envelope version 2"):
        codec.open(bytes(sealed), codec.digester.hexdigest(TEXT))
    with pytest.raises(CorruptChunkError, match="not a chunk envelope"):
        codec.open(b"junk" * 10, "ab" * 32)


def test_compression_never_grows_a_chunk() -> None:
    random_bytes = os.urandom(65536)
    assert compress(random_bytes, "fast") == (CompressionId.NONE, random_bytes)
    assert compress(TEXT, "none") == (CompressionId.NONE, TEXT)
    cid, packed = compress(TEXT, "fast")
    assert cid == CompressionId.ZSTD and decompress(cid, packed, len(TEXT)) == TEXT
