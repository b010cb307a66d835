"""Back up one disk: read it in fixed-size chunks over a few channels into a pool writer.

Pipeline: one reader thread walks the disk chunk by chunk (skipping holes the filesystem
reports, without reading them) and drops all-zero chunks at once; `channels` threads hash the
rest and ask the pool whether it already holds each (agent-side dedup); `channels` writer
threads compress, encrypt and hand the new ones to the pool, whose blob store makes them
durable on its own threads (fsync, upload) while the writers go on. Hashing, zstd and AES-GCM
release the GIL, so every core is busy.

Memory stays bounded whatever the disk size: the reader takes one of `channels + 2` buffer
slots before it reads a chunk and a worker gives the slot back when it is done, so at most
`(channels + 2) × chunk_size` bytes of chunk buffers exist at once (plus the sealed copies
the writers are making and the few the pool's blob store is finishing).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from bingobackup.mover.ratelimit import RateLimiter
from bingobackup.mover.reading import ChunkSink, DiskBackupResult
from bingobackup.mover.stages import DiskPipeline
from bingobackup.pools.writer import DedupMode

__all__ = ["ChunkSink", "DedupMode", "DiskBackupResult", "backup_disk"]


def backup_disk(
    device_path: Path | str,
    sink: ChunkSink,
    *,
    size_bytes: int,
    chunk_size: int,
    channels: int = 2,
    sparse_aware: bool = True,
    dedup_mode: DedupMode = "agent",
    read_limiter: RateLimiter | None = None,
    send_limiter: RateLimiter | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> DiskBackupResult:
    """Back up `size_bytes` of `device_path` into `sink`; commits the sink on success, aborts it
    on failure or cancel. Raises `DiskReadError` naming the disk offset, or `BackupCancelledError`.

    The same read → dedup → write stages the backup flow runs as Prefect tasks, here in threads.
    """
    return DiskPipeline(
        device_path,
        sink,
        size_bytes=size_bytes,
        chunk_size=chunk_size,
        channels=channels,
        sparse_aware=sparse_aware,
        dedup_mode=dedup_mode,
        read_limiter=read_limiter,
        send_limiter=send_limiter,
        progress=progress,
        cancel=cancel,
    ).run()
