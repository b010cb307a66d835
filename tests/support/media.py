"""Helpers of the tape and optical pool tests: a small emulated library or disc settings, a
disk image with data, zeros and a short tail, and a backup and restore through the mover."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from bingobackup.media.discs import OpticalSettings
from bingobackup.media.tapelib import LibrarySettings, TapeLibrary
from bingobackup.mover.backup import backup_disk
from bingobackup.mover.restore import write_disk_from_pool
from bingobackup.pools.stream import MediaPool
from support.pools import CHUNK

CARTRIDGE = 1 << 20
DISC = 1 << 20


def library(root: Path, count: int) -> TapeLibrary:
    settings = LibrarySettings(block_size=16 << 10, capacity_bytes=CARTRIDGE)
    return TapeLibrary.create(root, settings, [f"BB{n:04d}L8" for n in range(1, count + 1)])


def settings(tmp_path: Path, **overrides: object) -> OpticalSettings:
    fields: dict[str, object] = {
        "disc_bytes": DISC,
        "label_prefix": OpticalSettings.prefix_for("opt-1"),
        "output_dir": str(tmp_path / "out"),
    }
    return OpticalSettings.model_validate(fields | overrides)


def image(path: Path, chunks: int) -> str:
    data = os.urandom(CHUNK * (chunks - 2)) + bytes(CHUNK) + os.urandom(CHUNK // 2)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def backup(pool: MediaPool, source: Path, set_id: str, volume_id: str) -> None:
    size = source.stat().st_size
    backup_disk(source, pool.open_disk_writer(set_id, volume_id, size), size_bytes=size, chunk_size=CHUNK)


def restored_sha(pool: MediaPool, set_id: str, volume_id: str, output: Path) -> str:
    write_disk_from_pool(pool, pool.load_manifest(set_id, volume_id), output, channels=2, label=volume_id)
    return hashlib.sha256(output.read_bytes()).hexdigest()
