"""The engine's own steps, timed inside the measuring process (`benchmarks.one`).

Each returns the step's wall and CPU time (all threads of this process) around the engine
call only, so interpreter start-up and opening the pool (scrypt) are not counted.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.measure import peak_rss_bytes
from bingobackup.mover.backup import backup_disk
from bingobackup.mover.restore import write_disk_from_pool
from bingobackup.pools import create_pool, open_pool

VOLUME_ID = "vol-bench"
T = TypeVar("T")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(step: Callable[[], T]) -> tuple[T, dict[str, float]]:
    wall, cpu = time.perf_counter(), _cpu()
    result = step()
    return result, {"wall_seconds": time.perf_counter() - wall, "cpu_seconds": _cpu() - cpu}


def new_pool(pool_dir: Path, passphrase: str) -> None:
    """The pool the product uses by default: dedup, encrypted, compression "fast"."""
    create_pool(pool_dir, "dedup", encrypted=True, passphrase=passphrase, compression="fast")


def backup(
    image: Path, pool_dir: Path, passphrase: str, set_id: str, *, sparse_aware: bool, channels: int = 2
) -> dict[str, Any]:
    pool = open_pool(pool_dir, passphrase)
    size = image.stat().st_size
    writer = pool.open_disk_writer(set_id, VOLUME_ID, size)
    result, times = timed(
        lambda: backup_disk(
            image,
            writer,
            size_bytes=size,
            chunk_size=pool.chunk_size,
            channels=channels,
            sparse_aware=sparse_aware,
        )
    )
    counts = result.model_dump(exclude={"manifest", "seconds"})
    return {**times, **counts, "peak_rss_bytes": peak_rss_bytes()}


def export(
    pool_dir: Path, passphrase: str, set_id: str, output: Path, *, channels: int = 2
) -> dict[str, Any]:
    pool = open_pool(pool_dir, passphrase)
    manifest = pool.load_manifest(set_id, VOLUME_ID)
    result, times = timed(lambda: write_disk_from_pool(pool, manifest, output, channels=channels))
    counts = result.model_dump(exclude={"seconds"})
    return {**times, **counts, "peak_rss_bytes": peak_rss_bytes()}


def verify(pool_dir: Path, passphrase: str) -> dict[str, Any]:
    """`bingobackup verify` of every set in the pool, as the engine runs it (the catalog's part,
    choosing the disks and recording the result, is left out: a few small files)."""
    from bingobackup.lifecycle.verify import DiskToVerify, verify_disks

    pool = open_pool(pool_dir, passphrase)
    disks = [DiskToVerify(set_id=s, volume_id=v) for s, v in sorted(pool.list_manifests())]
    set_stored = {d.set_id: pool.load_manifest(d.set_id, d.volume_id).stored_bytes for d in disks}
    report, times = timed(lambda: verify_disks(pool, disks))
    if not report.ok:
        raise RuntimeError(f"verify found damage in the benchmark's pool: {report.headline()}")
    return {
        **times,
        "bytes_read": report.bytes_read,
        "logical_bytes": report.logical_bytes,
        "chunks_read": report.chunks_read,
        "set_stored_bytes": set_stored,
        "peak_rss_bytes": peak_rss_bytes(),
    }
