"""The chunk envelope: how one chunk is stored, whatever the pool kind.

    offset size field
    0      4    magic b"BBCH"
    4      1    envelope version (1)
    5      1    compression id (compression.py)
    6      1    cipher id (crypto.py)
    7      1    flags (none defined in version 1; must be 0)
    8      4    plaintext length, big-endian
    12     4    payload length (bytes after the header, GCM tag included), big-endian
    16     12   nonce (random per chunk; zeros when unencrypted)
    28     ...  payload: compressed-or-raw plaintext, AES-256-GCM encrypted when cipher is 1

The whole 28-byte header is the AES-GCM associated data, so no header field can be altered
without the chunk failing authentication. After decrypting and decompressing, the plaintext's
digest must equal the chunk id the manifest expects; any mismatch is a CorruptChunkError.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bingobackup.format.compression import CompressionSetting, compress, decompress
from bingobackup.format.constants import ENVELOPE_HEADER as _HEADER
from bingobackup.format.constants import ENVELOPE_MAGIC, ENVELOPE_VERSION
from bingobackup.format.crypto import NONCE_BYTES, CipherId
from bingobackup.format.digest import ChunkDigester
from bingobackup.format.errors import CorruptChunkError, UnsupportedFormatError

HEADER_BYTES = _HEADER.size
TAG_BYTES = 16
_NO_NONCE = bytes(NONCE_BYTES)


def max_sealed_size(plaintext_length: int) -> int:
    """The longest envelope a chunk of `plaintext_length` bytes can take (stored raw, encrypted)."""
    return HEADER_BYTES + plaintext_length + TAG_BYTES


@dataclass(frozen=True)
class EnvelopeHeader:
    version: int
    compression: int
    cipher: int
    flags: int
    plaintext_length: int
    payload_length: int
    nonce: bytes

    @classmethod
    def parse(cls, data: bytes | memoryview) -> EnvelopeHeader:
        """Raises ValueError when `data` does not start with an envelope header."""
        if len(data) < HEADER_BYTES:
            raise ValueError(f"{len(data)} bytes is shorter than the {HEADER_BYTES}-byte header")
        magic, version, compression, cipher, flags, plain, payload, nonce = _HEADER.unpack_from(data)
        if magic != ENVELOPE_MAGIC:
            raise ValueError(f"bad magic {magic!r}")
        return cls(version, compression, cipher, flags, plain, payload, nonce)

    def pack(self) -> bytes:
        return _HEADER.pack(
            ENVELOPE_MAGIC,
            self.version,
            self.compression,
            self.cipher,
            self.flags,
            self.plaintext_length,
            self.payload_length,
            self.nonce,
        )


@dataclass(frozen=True)
class SealedChunk:
    """An envelope as two buffers, so the plaintext of a raw unencrypted chunk is never copied."""

    header: bytes
    payload: bytes | bytearray | memoryview

    @property
    def size(self) -> int:
        return len(self.header) + len(self.payload)

    @property
    def parts(self) -> tuple[bytes | bytearray | memoryview, ...]:
        return (self.header, self.payload)


class EnvelopeCodec:
    """Seals and opens the chunks of one pool. Thread-safe; holds no lock. It also carries the
    pool's manifest-seal key (None when unencrypted), so a pool's keys travel together."""

    def __init__(
        self,
        digester: ChunkDigester,
        compression: CompressionSetting,
        aead: AESGCM | None,
        manifest_key: bytes | None = None,
    ) -> None:
        self.digester = digester
        self.compression: CompressionSetting = compression
        self._aead = aead
        self.manifest_key = manifest_key

    @property
    def cipher(self) -> CipherId:
        return CipherId.NONE if self._aead is None else CipherId.AES_256_GCM

    def seal(self, plaintext: bytes | bytearray) -> SealedChunk:
        compression_id, body = compress(plaintext, self.compression)
        header, nonce = self._header(compression_id, len(plaintext), len(body))
        if self._aead is None:
            return SealedChunk(header, body)
        return SealedChunk(header, self._aead.encrypt(nonce, body, header))

    def seal_into(self, plaintext: bytes | bytearray, out: memoryview) -> int:
        """Seals `plaintext` into the start of `out` (at least `max_sealed_size` bytes); returns
        the envelope's length. AES-GCM encrypts straight into `out`: no sealed copy is made."""
        if len(out) < max_sealed_size(len(plaintext)):
            raise ValueError(
                f"{len(out)} bytes cannot hold the envelope of a {len(plaintext)}-byte chunk "
                f"(up to {max_sealed_size(len(plaintext))})"
            )
        compression_id, body = compress(plaintext, self.compression)
        header, nonce = self._header(compression_id, len(plaintext), len(body))
        end = HEADER_BYTES + len(body)
        out[:HEADER_BYTES] = header
        if self._aead is None:
            out[HEADER_BYTES:end] = body
            return end
        end += TAG_BYTES
        self._aead.encrypt_into(nonce, body, header, out[HEADER_BYTES:end])
        return end

    def _header(self, compression_id: int, plaintext_length: int, body_length: int) -> tuple[bytes, bytes]:
        """The packed header of a new envelope and its nonce (fresh and random when encrypted)."""
        if self._aead is None:
            cipher, nonce, payload_length = CipherId.NONE, _NO_NONCE, body_length
        else:
            cipher, nonce, payload_length = (
                CipherId.AES_256_GCM,
                os.urandom(NONCE_BYTES),
                body_length + TAG_BYTES,
            )
        header = EnvelopeHeader(
            ENVELOPE_VERSION, compression_id, cipher, 0, plaintext_length, payload_length, nonce
        )
        return header.pack(), nonce

    def open(self, envelope: bytes | memoryview, expected_digest: str, location: str = "") -> bytes:
        """The verified plaintext; CorruptChunkError (naming digest and location) otherwise."""

        def corrupt(reason: str, *, key_refused: bool = False) -> CorruptChunkError:
            return CorruptChunkError(expected_digest, reason, location, key_refused=key_refused)

        try:
            header = EnvelopeHeader.parse(envelope)
        except ValueError as error:
            raise corrupt(f"not a chunk envelope ({error})") from None
        if header.version > ENVELOPE_VERSION:
            raise UnsupportedFormatError(
                f"chunk {expected_digest} uses envelope version {header.version}; this bingobackup reads "
                f"up to {ENVELOPE_VERSION}: upgrade it to read this pool"
            )
        if header.flags:
            raise corrupt(f"unknown flags {header.flags:#x}")
        if len(envelope) != HEADER_BYTES + header.payload_length:
            raise corrupt(f"{len(envelope)} bytes stored, header says {HEADER_BYTES + header.payload_length}")
        view = memoryview(envelope)
        payload = view[HEADER_BYTES:]
        if header.cipher != self.cipher:
            raise corrupt(
                f"cipher id {header.cipher} where the pool uses {int(self.cipher)}",
                key_refused=header.cipher != CipherId.NONE,
            )
        if self._aead is not None:
            try:
                body: bytes | memoryview = self._aead.decrypt(header.nonce, payload, view[:HEADER_BYTES])
            except InvalidTag:
                raise corrupt(
                    "authentication failed (the bytes were altered, or sealed under another pool's key)",
                    key_refused=True,
                ) from None
        else:
            body = payload
        try:
            plaintext = decompress(header.compression, body, header.plaintext_length)
        except zstandard.ZstdError as error:
            raise corrupt(f"zstd cannot decode it ({error})") from None
        if len(plaintext) != header.plaintext_length:
            raise corrupt(f"{len(plaintext)} bytes decoded, header says {header.plaintext_length}")
        actual = self.digester.hexdigest(plaintext)
        if actual != expected_digest:
            raise corrupt(f"its content has digest {actual}")
        return plaintext
