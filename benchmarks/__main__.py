"""`python -m benchmarks [--quick] [--size 2GiB]`: run the benchmark, print it, write docs/benchmarks.md."""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from benchmarks.image import DATA_FRACTION, build_image
from benchmarks.machine import machine_info, probe
from benchmarks.measure import REPO_ROOT
from benchmarks.orchestration import end_to_end_block, only_rows, scale_section, scheduler_block
from benchmarks.report import print_tables, write_markdown
from benchmarks.runner import BenchRun, file_digest
from benchmarks.tables import method_lines, tables_for

MIB = 1 << 20
UNITS = {"": MIB, "m": MIB, "mib": MIB, "g": 1 << 30, "gib": 1 << 30}


def parse_size(text: str) -> int:
    """'2GiB', '256MiB', '256' (MiB) → bytes; a whole number of MiB, at least 64 MiB."""
    number = text.strip().lower().rstrip("b")
    digits = number.rstrip("migk")
    unit = number[len(digits) :]
    if not digits.isdigit() or unit not in UNITS:
        raise argparse.ArgumentTypeError(f"size {text!r} is not understood; write it like 2GiB or 256MiB")
    size = int(digits) * UNITS[unit]
    if size < 64 * MIB:
        raise argparse.ArgumentTypeError("the image must be at least 64MiB to hold a realistic mix")
    return size


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--size", type=parse_size, default=None, help="image size (default 2GiB; 256MiB with --quick)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="256 MiB, no restic/borg, no flow, docs untouched"
    )
    parser.add_argument("--skip-external", action="store_true", help="do not run restic or borg")
    parser.add_argument(
        "--skip-flow", action="store_true", help="no Prefect steps (flow, end to end, scheduler)"
    )
    parser.add_argument("--e2e-only", action="store_true", help="only `backup run` end to end vs restic")
    parser.add_argument("--scheduler-only", action="store_true", help="only 100 jobs due at one minute")
    parser.add_argument("--scheduler-limit", type=int, default=10, help="work queue limit per host (0: none)")
    parser.add_argument(
        "--channels", type=int, default=2, help="engine channels (default 2, the job default)"
    )
    parser.add_argument("--docs", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--workdir", type=Path, default=None, help="where the temporary directory goes")
    args = parser.parse_args(argv)
    if args.size is None:
        args.size = 256 * MIB if args.quick else 2 << 30
    if args.quick:
        args.skip_external = args.skip_flow = args.no_docs = True
    return args


def main(argv: list[str]) -> int:
    args = arguments(argv)
    console = Console() if sys.stdout.isatty() else Console(width=200)  # logs keep whole rows
    started = time.monotonic()

    def log(message: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f}s[/dim] {message}")

    work = Path(tempfile.mkdtemp(prefix="bingobackup-bench-", dir=args.workdir))
    try:
        if args.e2e_only or args.scheduler_only:
            return only_rows(args, work, log, console)
        log(f"building a {args.size // MIB} MiB image ({DATA_FRACTION:.0%} data) in {work}")
        image = build_image(work / "disk.raw", args.size)
        log(f"non-zero data: {image.nonzero_bytes / MIB:.0f} MiB; probing the machine's limits")
        info = machine_info()
        limits = probe(image.path, work / "probe.tmp")
        run = BenchRun(image, limits, work, log, channels=args.channels)
        skipped: list[str] = []
        if not args.skip_external:
            skipped = run.start_external()
            for line in skipped:
                log(line)

        original = file_digest(image.path)
        run.engine_backup("first")
        run.external_backup("first")
        blocks = []
        if not args.skip_flow:
            run.flow_backup()
            blocks = [
                end_to_end_block(image.path, work, log),
                scheduler_block(work, args.scheduler_limit, log),
            ]
        run.churn()
        churned = file_digest(image.path)
        if churned == original:
            raise RuntimeError("the churn step changed nothing; the second backup would measure nothing")
        run.engine_backup("second")
        run.external_backup("second")
        run.engine_export("second", churned)
        run.external_restore("second", churned)

        tables = tables_for(run, run.limits, args)
        console.print()
        print_tables(console, tables + [table for block in blocks for table in block.tables])
        if not args.no_docs:
            command = "python -m benchmarks " + shlex.join(argv) if argv else "make bench"
            when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
            with scale_section(args.docs, blocks):
                write_markdown(args.docs, command.strip(), info, method_lines(run, skipped), tables, when)
            log(f"wrote {args.docs}")
        log("done")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
