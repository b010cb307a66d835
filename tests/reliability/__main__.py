"""`python -m tests.reliability` (`make reliability`): the long crash campaign, then its table.

Runs tests/reliability with every named crash point and `--trials` seeded random offsets per
scenario, collects each trial (crash_harness.record) and prints one table: scenario, kills
tried, survived, data lost, max re-sent share. docs/reliability.md keeps a run's table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _table(title: str, *figures: str) -> Table:
    """A table of one row per scenario: its name left, its figures right."""
    table = Table(title=title)
    table.add_column("scenario", justify="left")
    for column in figures:
        table.add_column(column, justify="right")
    return table


def summary_table(trials: list[dict[str, object]]) -> Table:
    by_scenario: dict[str, list[dict[str, object]]] = defaultdict(list)
    for trial in trials:
        by_scenario[str(trial["scenario"])].append(trial)
    table = _table(
        "Crash campaign: SIGKILL at named and random crash points, then the same command again",
        "trials",
        "survived",
        "data lost",
        "max re-sent share",
        "not reached",
        "lost at power loss",
    )
    for scenario, rows in by_scenario.items():
        killed = [r for r in rows if r["killed"]]
        share = max((float(r["resent_share"]) for r in killed), default=0.0)  # type: ignore[arg-type]
        table.add_row(
            scenario,
            str(len(killed)),
            str(sum(bool(r["survived"]) for r in killed)),
            str(sum(bool(r["data_lost"]) for r in killed)),
            f"{100 * share:.1f} %",
            str(len(rows) - len(killed)),
            str(sum(int(r.get("lost_at_power_loss", 0)) for r in killed)) if "power loss" in scenario else "",  # type: ignore[call-overload]
        )
    return table


def concurrency_table(trials: list[dict[str, object]]) -> Table:
    """The concurrency scenarios' figures (tests/support/concurrency.py): chunk bytes stored
    (pack headers and indexes left out) by a serial run of the same disks, and by the
    concurrent processes before and after the last `gc`."""
    table = _table(
        "Concurrency: processes writing one pool at once, stored chunk bytes against a serial run",
        "sets",
        "seconds",
        "serial MiB",
        "stored MiB, before gc",
        "after gc",
        "chunk ids stored, MiB",
        "dead MiB",
        "duplicate copies (by round, left)",
        "dropped by gc",
        "faults injected",
    )
    mib = 1 << 20
    for trial in trials:
        figures: Any = trial.get("concurrency")
        if not figures or not figures["rounds"]:
            continue  # not a concurrency trial, or an outage trial (one writer: its row above says all)
        serial, before, after = figures["serial"], figures["before_gc"], figures["after_gc"]
        faults = ", ".join(f"{name} {count}" for name, count in figures["faults_injected"].items())
        table.add_row(
            str(trial["scenario"]),
            str(figures["sets"]),
            f"{figures['seconds_concurrent']:.0f}",
            f"{serial['stored_chunk_bytes'] / mib:.2f}",
            f"{before['stored_chunk_bytes'] / mib:.2f}",
            f"{after['stored_chunk_bytes'] / mib:.2f}",
            f"{after['unique_live_bytes'] / mib:.2f}",
            f"{after['dead_bytes'] / mib:.2f}",
            f"{figures['duplicates_left_by_round']}, {after['duplicate_copies']}",
            str(figures["duplicates_dropped"]),
            faults,
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability", description=__doc__)
    parser.add_argument("--trials", type=int, default=5, help="random-offset kills per scenario")
    parser.add_argument("--seed", type=int, default=26)
    parser.add_argument("--results", type=Path, help="also keep every trial here (JSON lines)")
    parser.add_argument("--fuzz-examples", type=int, default=50, help="random examples per fuzz test")
    parser.add_argument(
        "--only",
        help="';'-separated crash scenarios to run (keys of test_crash_points.LONG, e.g. "
        "'restore vm;prune, power loss'), without the fuzz tests; default: all, and the fuzz tests",
    )
    args = parser.parse_args(argv)
    import pytest

    with tempfile.TemporaryDirectory(prefix="reliability-") as work:
        results = Path(work) / "trials.jsonl"
        os.environ.update(
            BINGOBACKUP_RELIABILITY_RESULTS=str(results),
            BINGOBACKUP_RELIABILITY_TRIALS=str(args.trials),
            BINGOBACKUP_RELIABILITY_SEED=str(args.seed),
            BINGOBACKUP_RELIABILITY_LONG="1",
            FUZZ_EXAMPLES=str(args.fuzz_examples),  # random (not the suite's derandomized) examples
        )
        if args.only:
            os.environ["BINGOBACKUP_RELIABILITY_ONLY"] = args.only
        os.chdir(ROOT)
        # The cloud-response fuzz (tests/cloud) takes random examples here too; --only runs
        # the named crash scenarios alone.
        where = (
            [str(HERE / "test_crash_points.py")]
            if args.only
            else [str(HERE), str(ROOT / "tests" / "cloud" / "test_response_fuzz.py")]
        )
        code = pytest.main(["-q", "-p", "no:cacheprovider", "--timeout=3600", *where])
        trials = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
        if args.results and results.exists():
            shutil.copyfile(results, args.results)
    console = Console(width=max(Console().width, 130))  # the table whole, even in a pipe
    console.print(summary_table(trials))
    console.print(concurrency_table(trials))
    pinned = max((int(t.get("uncommitted_sets", 0)) for t in trials), default=0)
    console.print(
        f"{len(trials)} trials. Sets left in the pool with manifests but no catalog commit (invisible, "
        f"their chunks pinned: nothing removes them yet): {pinned}",
        highlight=False,
    )
    for trial in trials:
        for problem in trial["problems"]:
            console.print(f"{trial['scenario']} killed at {trial['point']}: {problem}", highlight=False)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
