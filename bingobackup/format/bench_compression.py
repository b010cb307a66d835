"""Pick the zstd level behind compression "fast": `python -m bingobackup.format.bench_compression`.

Compresses 4 MiB chunks of real system files (binaries, libraries, text: what a VM disk
holds) at several levels on one core and prints MiB/s and ratio. The result is recorded in
docs/format.md; "fast" must keep one core ahead of a disk read (~200-500 MiB/s per channel).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import zstandard

CHUNK = 4 << 20
LEVELS = (-3, -1, 1, 3, 6)


def _sample_chunks(roots: list[Path], total: int) -> Iterator[bytes]:
    buffer = bytearray()
    produced = 0
    for root in roots:
        for path in sorted(root.rglob("*")):
            if produced >= total:
                return
            try:
                if not path.is_file() or path.is_symlink():
                    continue
                buffer += path.read_bytes()
            except OSError:
                continue
            while len(buffer) >= CHUNK and produced < total:
                yield bytes(buffer[:CHUNK])
                del buffer[:CHUNK]
                produced += CHUNK


def main(total_mib: int = 128) -> None:
    roots = [Path("/usr/bin"), Path("/usr/lib"), Path("/usr/share/doc")]
    chunks = list(_sample_chunks(roots, total_mib << 20))
    size = sum(len(c) for c in chunks)
    print(f"{len(chunks)} chunks of 4 MiB from {', '.join(map(str, roots))}")
    for level in LEVELS:
        compressor = zstandard.ZstdCompressor(level=level)
        started = time.perf_counter()
        stored = sum(min(len(compressor.compress(c)), len(c)) for c in chunks)
        seconds = time.perf_counter() - started
        print(f"level {level:>3}: {size / seconds / (1 << 20):7.0f} MiB/s  ratio {size / stored:5.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 128)
