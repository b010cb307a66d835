"""The Verify rows: `bingobackup verify` against `export-disk` on the same pool, and
`restic check --read-data` on a repository of the same image where restic is installed.

Written as the section "## Verify" of docs/benchmarks.md, by `make bench` (on its pool after
the second backup) and by `make bench-verify` (`python -m benchmarks --verify-only`: one
backup of the image, then the three reads), each replacing only that section.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.engine import new_pool
from benchmarks.external import Restic
from benchmarks.measure import directory_bytes, run_step
from benchmarks.report import Table, Target, mib, print_tables, targets_table, write_section
from benchmarks.runner import PASSPHRASE, BenchRun, best_of, file_digest

SECTION = "## Verify"
ATTEMPTS = 2  # each read measured twice, the faster kept (as exports and restores are)
Log = Callable[[str], None]


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min), {five:.1f} (5 min)"


@dataclass
class Read:
    """One whole-repository read: what it took and how many stored bytes it covered."""

    name: str
    raw: dict[str, Any]
    stored_bytes: int

    @property
    def wall(self) -> float:
        return float(self.raw["wall_seconds"])

    @property
    def cpu(self) -> float:
        return float(self.raw["cpu_seconds"])

    @property
    def mb_s(self) -> float:
        return self.stored_bytes / 1e6 / self.wall

    @property
    def mb_per_cpu_s(self) -> float:
        return self.stored_bytes / 1e6 / self.cpu if self.cpu else 0.0


def measure_verify(pool: Path, log: Log) -> Read:
    log("bingobackup: verify of every set in the pool")
    raw = best_of(lambda: run_step("verify", {"pool": str(pool), "passphrase": PASSPHRASE}), ATTEMPTS)
    return Read(f"bingobackup verify (every set, {raw['chunks_read']} chunks)", raw, int(raw["bytes_read"]))


def measure_export(pool: Path, set_id: str, set_stored: int, expected: str, work: Path, log: Log) -> Read:
    log(f"bingobackup: export-disk of set {set_id}")
    output = work / "verify-export.raw"

    def attempt() -> dict[str, Any]:
        raw = run_step(
            "export", {"pool": str(pool), "passphrase": PASSPHRASE, "set_id": set_id, "output": str(output)}
        )
        if file_digest(output) != expected:
            raise RuntimeError("the exported disk differs from the image it was backed up from")
        output.unlink()
        return raw

    return Read(
        f"bingobackup export-disk (set {set_id}, written as a sparse file)",
        best_of(attempt, ATTEMPTS),
        set_stored,
    )


def measure_restic_check(restic: Restic, log: Log) -> Read:
    log("restic: check --read-data")
    raw = best_of(restic.check_read_data, ATTEMPTS)
    return Read(f"restic check --read-data ({restic.version()})", raw, directory_bytes(restic.repo))


def tables(reads: list[Read]) -> list[Table]:
    table = Table(
        "Verify (scrub) against export-disk and `restic check --read-data`, same image",
        [
            "step",
            "wall s",
            "stored MiB read",
            "MB/s of stored data",
            "CPU s",
            "MB/s of stored data per CPU s",
            "peak RSS MiB",
        ],
    )
    for read in reads:
        table.add(
            read.name,
            read.wall,
            mib(read.stored_bytes),
            read.mb_s,
            read.cpu,
            read.mb_per_cpu_s,
            mib(int(read.raw["peak_rss_bytes"])),
        )
    verify, export = reads[0], reads[1]
    restic = reads[2] if len(reads) > 2 else None
    per_core = verify.mb_per_cpu_s / export.mb_per_cpu_s if export.mb_per_cpu_s else 0.0
    targets = [
        Target(
            "verify vs export-disk, MB/s of stored data per CPU second (per core)",
            f"{per_core:.2f}×",
            "≥ 1×",
            per_core >= 1.0,
        ),
        Target(
            "verify vs `restic check --read-data`, MB/s of stored data",
            f"{verify.mb_s / restic.mb_s:.2f}×" if restic else "restic not installed",
            "(for comparison)",
            None,
        ),
    ]
    checked = targets_table(targets)
    checked.title = "Verify targets"
    return [table, checked]


def section(command: str, when: str, loads: tuple[str, str], method: str, result: list[Table]) -> str:
    lines = [
        SECTION,
        "",
        f"Command: `{command}` — run {when}. Written by the benchmark; `make bench-verify` "
        "(`python -m benchmarks --verify-only`) measures these rows alone and rewrites only this section.",
        "",
        f"- {method}",
        "- Each read runs in a fresh process (`benchmarks.one`), twice, the faster kept; our wall and "
        "CPU time cover the engine call only (the pool opened, its scrypt done; verify's catalog "
        "lookups, a few small files, left out), restic is timed as a whole process (its start, key "
        "derivation and index load included), as in the Results above. *Stored data* is what "
        "each step had to read: for verify every distinct chunk the pool's sets reference, for the "
        "export the chunks of the one disk it writes, for restic its whole repository. Verify reads "
        "each chunk, checks its AES-GCM tag, decompresses it and checks its keyed BLAKE3 digest, and "
        "writes nothing; the export does the same and writes the disk into the page cache.",
        f"- Machine load average before: {loads[0]}; after: {loads[1]}. The machine's two cores were "
        "shared with other work during this run: wall times are above an idle machine's, and the "
        "per-CPU-second figures are the fairer comparison.",
        "",
    ]
    return "\n".join(lines) + "\n" + "\n\n".join(t.to_markdown() for t in result) + "\n"


def verify_only(args: Any, argv: list[str], work: Path, log: Log, console: Any) -> int:
    """`--verify-only`: back the image up once (and with restic where installed), then the reads."""
    from benchmarks.image import build_image

    loads = (load(), "")
    log(f"building a {args.size >> 20} MiB image in {work}")
    image = build_image(work / "disk.raw", args.size)
    expected = file_digest(image.path)
    pool = work / "pool"
    new_pool(pool, PASSPHRASE)
    log("bingobackup: backup of the image")
    backed_up = run_step(
        "backup",
        {
            "image": str(image.path),
            "pool": str(pool),
            "passphrase": PASSPHRASE,
            "set_id": "first",
            "sparse_aware": True,
        },
    )
    restic = None
    if not args.skip_external and Restic.available():
        restic = Restic(work)
        restic.init()
        log("restic: backup of the image")
        restic.backup(image.path, "first")
    reads = [measure_verify(pool, log)]
    reads.append(
        measure_export(pool, "first", int(reads[0].raw["set_stored_bytes"]["first"]), expected, work, log)
    )
    if restic is not None:
        reads.append(measure_restic_check(restic, log))
    loads = (loads[0], load())
    result = tables(reads)
    print_tables(console, result)
    if not args.no_docs:
        method = (
            f"Image: the benchmark's deterministic {args.size >> 20} MiB image ({image.nonzero_bytes >> 20} MiB "
            f"of non-zero regions), backed up once ({int(backed_up['bytes_sent']) >> 20} MiB sent) into an "
            "encrypted dedup pool (zstd fast) and, where installed, into a restic repository; then verify, "
            "export-disk and `restic check --read-data` read them back."
            + ("" if restic else " restic is not installed on this machine: its row is missing.")
        )
        command = "python -m benchmarks " + " ".join(argv)
        write_section(args.docs, SECTION, section(command, _now(), loads, method, result))
        log(f"wrote the {SECTION[3:]} section of {args.docs}")
    return 0


def full_run_reads(run: BenchRun, expected: str) -> list[Read]:
    """`make bench`: the reads on the run's sparse-file pool (both backups) and restic's repository."""
    pool = run.work / "pool-sparse-file"
    reads = [measure_verify(pool, run.log)]
    set_stored = int(reads[0].raw["set_stored_bytes"]["second"])
    reads.append(measure_export(pool, "second", set_stored, expected, run.work, run.log))
    restic = next((tool for tool in run.external if isinstance(tool, Restic)), None)
    if restic is not None:
        reads.append(measure_restic_check(restic, run.log))
    return reads


def write_full_run(docs: Path, command: str, loads: tuple[str, str], reads: list[Read]) -> list[Table]:
    result = tables(reads)
    method = (
        "On `make bench`'s own encrypted dedup pool (sparse-file mode) after its second backup: verify "
        "reads both sets' chunks, the export writes the second set's disk, and `restic check "
        "--read-data` reads the repository holding restic's two backups of the same image."
        + ("" if len(reads) > 2 else " restic is not installed on this machine: its row is missing.")
    )
    write_section(docs, SECTION, section(command, _now(), loads, method, result))
    return result


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
