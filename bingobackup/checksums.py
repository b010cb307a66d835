"""Whole-file SHA-256, the checksum operators compare a restored disk with its source by."""

from __future__ import annotations

import hashlib
from pathlib import Path

_BLOCK = 4 << 20


def file_sha256(path: Path | str) -> str:
    """Hex SHA-256 of a file's bytes (holes read as zeros), in 4 MiB reads."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()
