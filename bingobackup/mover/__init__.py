"""The data mover: finds an attached disk, reads it over channels into a pool, writes it back.

- `devices.DeviceLocator`: the disk's path from its virtio serial.
- `backup.backup_disk`: disk → pool writer (holes skipped, zero chunks dropped, dedup, limits).
- `restore.write_disk_from_pool`: pool → sparse image file or device (verified, holes kept).
- `ratelimit.RateSchedule` / `RateLimiter`: daily UTC rate windows and a token bucket.
"""

from __future__ import annotations

from bingobackup.mover.backup import ChunkSink, DiskBackupResult, backup_disk
from bingobackup.mover.devices import DeviceLocator
from bingobackup.mover.errors import (
    BackupCancelledError,
    DeviceTimeoutError,
    DiskReadError,
    MoverError,
    RestoreChunkError,
)
from bingobackup.mover.ratelimit import RateLimiter, RateSchedule, RateWindow, parse_rate
from bingobackup.mover.restore import ChunkSource, DiskRestoreResult, write_disk_from_pool

__all__ = [
    "BackupCancelledError",
    "ChunkSink",
    "ChunkSource",
    "DeviceLocator",
    "DeviceTimeoutError",
    "DiskBackupResult",
    "DiskReadError",
    "DiskRestoreResult",
    "MoverError",
    "RateLimiter",
    "RateSchedule",
    "RateWindow",
    "RestoreChunkError",
    "backup_disk",
    "parse_rate",
    "write_disk_from_pool",
]
