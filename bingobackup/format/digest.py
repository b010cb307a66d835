"""Chunk identity: a 256-bit digest of the plaintext, written as 64 hex characters.

| id | name         | used by |
|----|--------------|---------|
| 1  | blake3       | unencrypted pools |
| 2  | blake3-keyed | encrypted pools: keyed with a subkey of the pool's master key, so the
                      chunk ids of a pool never reveal whether it holds some known data |

Identifiers are recorded in the pool config and never reused. BLAKE3 releases the GIL, so
channels hash in parallel; one thread per chunk (parallelism comes from the channels).
"""

from __future__ import annotations

from enum import IntEnum

import blake3

from bingobackup.format.errors import UnsupportedFormatError

DIGEST_HEX_LENGTH = 64


class DigestId(IntEnum):
    BLAKE3 = 1
    BLAKE3_KEYED = 2


class ChunkDigester:
    """Computes chunk ids for one pool. Holds a key when keyed; never shows it."""

    __slots__ = ("_algorithm", "_key")

    def __init__(self, algorithm: int, key: bytes | None = None) -> None:
        if algorithm == DigestId.BLAKE3:
            if key is not None:
                raise ValueError("blake3 (id 1) is unkeyed; use blake3-keyed (id 2) with a key")
        elif algorithm == DigestId.BLAKE3_KEYED:
            if key is None or len(key) != 32:
                raise ValueError("blake3-keyed needs a 32-byte key")
        else:
            raise UnsupportedFormatError(
                f"digest algorithm id {algorithm} is unknown to this version of bingobackup; upgrade it"
            )
        self._algorithm = DigestId(algorithm)
        self._key = key

    @property
    def algorithm(self) -> DigestId:
        return self._algorithm

    def hexdigest(self, data: bytes | bytearray | memoryview) -> str:
        if self._key is None:
            return blake3.blake3(data).hexdigest()
        return blake3.blake3(data, key=self._key).hexdigest()

    def __repr__(self) -> str:
        return f"ChunkDigester({self._algorithm.name.lower()})"


def is_digest(text: str) -> bool:
    return len(text) == DIGEST_HEX_LENGTH and all(c in "0123456789abcdef" for c in text)
