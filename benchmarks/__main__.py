"""`python -m benchmarks [--quick] [--size 2GiB] [--scale-only]`: run the benchmark, print it, write docs/benchmarks.md."""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from benchmarks import scale_report
from benchmarks import verify as verify_rows
from benchmarks.image import DATA_FRACTION, build_image
from benchmarks.machine import machine_info, probe
from benchmarks.measure import REPO_ROOT
from benchmarks.orchestration import end_to_end_block, only_rows, scale_section, scheduler_block
from benchmarks.report import print_tables, write_markdown, write_section
from benchmarks.runner import BenchRun, file_digest
from benchmarks.tables import method_lines, tables_for

MIB = 1 << 20
Log = Callable[[str], None]
UNITS = {"": MIB, "m": MIB, "mi": MIB, "mib": MIB, "g": 1 << 30, "gi": 1 << 30, "gib": 1 << 30}


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
    parser.add_argument(
        "--verify-only",
        action="store_true",
        help="only verify vs export-disk (and restic check --read-data) on one backup of the image",
    )
    parser.add_argument(
        "--scheduler-limit",
        type=int,
        default=0,
        help="work queue limit per host (default 0: none; the jobs' tag limits bound the data path)",
    )
    parser.add_argument(
        "--scheduler-database",
        choices=("sqlite", "postgresql"),
        default="postgresql",
        help="the Prefect server's database for the scheduler row (default postgresql, as a team "
        "server; sqlite: the local server's file)",
    )
    parser.add_argument(
        "--channels", type=int, default=2, help="engine channels (default 2, the job default)"
    )
    parser.add_argument(
        "--scale-only",
        action="store_true",
        help="only the scale rows (orchestration on the simulator's scale scenario, CLI start cost); "
        "the rest of docs/benchmarks.md is left as it is",
    )
    parser.add_argument("--skip-scale", action="store_true", help="do not run the scale rows")
    parser.add_argument(
        "--scale-vms",
        type=_counts,
        default=[10, 25, 50, 100],
        help="numbers of VMs of the scale scenario to back up (default 10,25,50,100; at most 100)",
    )
    parser.add_argument(
        "--scale-delay",
        type=float,
        default=0.02,
        help="the simulator's seconds per state change in the scale rows (default 0.02; its own default is 0.2)",
    )
    parser.add_argument(
        "--scale-rounds",
        type=int,
        default=2,
        help="times every size is measured, the fastest kept (default 2)",
    )
    parser.add_argument("--cli-runs", type=int, default=7, help="runs of each CLI command timed (default 7)")
    parser.add_argument("--docs", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--workdir", type=Path, default=None, help="where the temporary directory goes")
    args = parser.parse_args(argv)
    if args.size is None:
        args.size = 256 * MIB if args.quick else 2 << 30
    if args.quick:
        args.skip_external = args.skip_flow = args.skip_scale = args.no_docs = True
    return args


def _counts(text: str) -> list[int]:
    """'10,25,50' → [10, 25, 50]: VMs of the scale scenario (1 to 100)."""
    try:
        counts = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        counts = []
    if not counts or not all(1 <= c <= 100 for c in counts):
        raise argparse.ArgumentTypeError(f"{text!r}: give numbers of VMs from 1 to 100, like 10,25,50,100")
    return counts


def run_scale(args: argparse.Namespace, argv: list[str], work: Path, console: Console, log: Log) -> None:
    """The scale rows: measured, printed and, unless --no-docs, written as the Scale section
    of the docs with its plot beside them."""
    log(f"scale: backing up {', '.join(map(str, args.scale_vms))} VMs of the scale scenario; CLI start cost")
    run = scale_report.measure(
        work / "scale", args.scale_vms, args.scale_delay, args.cli_runs, args.scale_rounds
    )
    tables = scale_report.scale_tables(run)
    console.print()
    print_tables(console, tables)
    if args.no_docs:
        return
    command = "python -m benchmarks " + shlex.join(argv) if argv else "make bench"
    scale_report.plot(run, args.docs.parent / scale_report.PLOT_NAME)
    text = scale_report.section(run, command.strip(), _now(), args.scale_vms, tables)
    write_section(args.docs, scale_report.SECTION, text)
    log(f"wrote the Scale section of {args.docs} and {scale_report.PLOT_NAME} beside it")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def main(argv: list[str]) -> int:
    args = arguments(argv)
    console = Console() if sys.stdout.isatty() else Console(width=200)  # logs keep whole rows
    started = time.monotonic()

    def log(message: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f}s[/dim] {message}")

    work = Path(tempfile.mkdtemp(prefix="bingobackup-bench-", dir=args.workdir))
    try:
        if args.verify_only:
            return verify_rows.verify_only(args, argv, work, log, console)
        if args.e2e_only or args.scheduler_only:
            return only_rows(args, work, log, console)
        if args.scale_only:
            run_scale(args, argv, work, console, log)
            log("done")
            return 0
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
                scheduler_block(work, args.scheduler_limit, args.scheduler_database, log),
            ]
        run.churn()
        churned = file_digest(image.path)
        if churned == original:
            raise RuntimeError("the churn step changed nothing; the second backup would measure nothing")
        run.engine_backup("second")
        run.external_backup("second")
        run.engine_export("second", churned)
        run.external_restore("second", churned)
        load_before = verify_rows.load()
        reads = verify_rows.full_run_reads(run, churned)
        verify_loads = (load_before, verify_rows.load())

        tables = tables_for(run, run.limits, args)
        console.print()
        print_tables(console, tables + [table for block in blocks for table in block.tables])
        print_tables(console, verify_rows.tables(reads))
        if not args.no_docs:
            command = "python -m benchmarks " + shlex.join(argv) if argv else "make bench"
            lines = method_lines(run, skipped)
            with scale_section(args.docs, blocks):
                write_markdown(
                    args.docs,
                    command.strip(),
                    info,
                    lines,
                    tables,
                    _now(),
                    kept=(scale_report.SECTION, verify_rows.SECTION),
                )
            verify_rows.write_full_run(args.docs, command.strip(), verify_loads, reads)
            log(f"wrote {args.docs}")
        if not args.skip_scale:
            run_scale(args, argv, work, console, log)
        log("done")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
