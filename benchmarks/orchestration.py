"""Rows (b) and (d) of the orchestration budget: end to end against restic, and the scheduler.

Each runs as one `benchmarks.one` step (its own local Prefect server and simulator) and
writes its part of the section "Scale: end to end and scheduler" of docs/benchmarks.md; the
part a run did not measure is kept as it was.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import endtoend, scheduler
from benchmarks.measure import run_step
from benchmarks.report import Table, Target, targets_table

SECTION = "## Scale: end to end and scheduler"
E2E_HEADING = "### End to end: `bingobackup backup run` against `restic backup`"
SCHEDULER_HEADING = "### Scheduler: backup jobs due at the same minute"
E2E_ROUNDS = 5  # restic alone varies 4.4-6.4 s between rounds on this host: five for a steadier median
E2E_TARGET = 3.0  # restic's wall time over ours
SCHEDULER_JOBS = 100
START_WITHIN = 60.0


@dataclass
class Block:
    """One row's part of the section: its heading, how it was measured, its tables."""

    heading: str
    method: list[str]
    tables: list[Table]

    def to_markdown(self) -> str:
        tables = [table.to_markdown().replace("### ", "#### ", 1) for table in self.tables]
        return "\n\n".join([self.heading, "\n".join(self.method), *tables]) + "\n"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min), {five:.1f} (5 min)"


def end_to_end_block(image: Path, work: Path, log: Callable[[str], None]) -> Block:
    log(f"end to end: {E2E_ROUNDS} rounds of `bingobackup backup run` and `restic backup`, alternated")
    load_before, started = _load(), _now()
    raw = run_step("e2e", {"image": str(image), "work": str(work / "e2e"), "rounds": E2E_ROUNDS})
    summary = endtoend.summarise(raw)
    parts = endtoend.PARTS
    table = Table(
        f"One VM, one {raw['image_bytes'] >> 20} MiB disk: wall seconds",
        ["round", "ours run in", "ours", "ours CPU s", *parts, "restic", "restic CPU s"],
    )
    for mode in endtoend.MODES:
        for index, ours in enumerate(raw["ours"][mode]):
            restic = raw["restic"][index] if index < len(raw["restic"]) else {}
            table.add(
                str(index + 1),
                mode,
                ours["wall"],
                ours["cpu"],
                *(ours[p] for p in parts),
                restic.get("wall"),
                restic.get("cpu"),
            )
    for mode in endtoend.MODES:
        for label in ("min", "median"):
            row = summary[mode][label]
            restic_cpu = summary.get("restic_cpu_median") if label == "median" else None
            table.add(
                label,
                mode,
                row["wall"],
                row["cpu"],
                *(row[p] for p in parts),
                summary.get(f"restic_{label}"),
                restic_cpu,
            )
    goals = []
    for mode in endtoend.MODES:
        ratio = summary[mode].get("ratio_median")
        goals.append(
            Target(
                f"end to end, ours ({mode}): restic's wall time ÷ ours (median; min ÷ min "
                + (f"{summary[mode]['ratio_min']:.2f}×)" if ratio else "—)"),
                f"{ratio:.2f}×" if ratio else "restic not installed",
                f"≥ {E2E_TARGET:.0f}×",
                None if ratio is None else ratio >= E2E_TARGET,
            )
        )
    targets = targets_table(goals)
    method = [
        f"Run {started}, `python -m benchmarks --e2e-only` (`make bench-e2e`). {E2E_ROUNDS} rounds, their "
        "order turned each round: real `bingobackup backup run SPEC.yaml` processes backing up a "
        "VM whose only disk is the benchmark image (added with `bingobackup sim add-vm`) into a "
        "fresh encrypted dedup pool, and `restic backup` of the same image into a fresh "
        f"repository ({raw['restic_version'] or 'restic absent'}); the local Prefect server and "
        "the simulator were already running, as for a user who ran any command before, and so "
        "was the backup host's worker (`bingobackup worker start`, as on a real backup host). "
        "Ours ran two ways each round: in its **own process** (BINGOBACKUP_HANDOFF=0, as "
        "without a worker) and handed to the **worker fork server** (cli/handoff.py, "
        "docs/agent.md; its CPU s adds the forked child's, from the fork server's log). The "
        "simulator's snapshots and volumes are copy-on-write. Each column is its own min or "
        "median (they need not add up on those rows).",
        "",
        "Our time split from the run's own records in the Prefect API: **start** (process launch → "
        "flow run Running: imports, checks, connecting, creating the run), **run setup** (→ the "
        "VM's task: resolving content, run slot, tag limits), **cloud steps** (snapshot, volume "
        "attached and detached, snapshot deleted, with their task runs), **data path** (first "
        "chunk read → last chunk written), **summary** (catalog, summary artifact, run end, the "
        'table printed, process exit). Start + run setup is the "process start + Prefect '
        'setup" of the budget.',
        "",
        f"Machine load average before: {load_before}; after: {_load()}. Other work shared the two "
        "cores during this run, so wall times are above what an idle machine gives; CPU seconds "
        "are less affected.",
    ]
    return Block(E2E_HEADING, method, [table, targets])


def scheduler_block(work: Path, limit: int, database: str, log: Callable[[str], None]) -> Block:
    log(
        f"scheduler: {SCHEDULER_JOBS} jobs due at one minute, one worker per backup host "
        f"(limit {limit}, server on {database})"
    )
    load_before, started = _load(), _now()
    raw = run_step(
        "scheduler",
        {"work": str(work / "scheduler"), "jobs": SCHEDULER_JOBS, "limit": limit, "database": database},
    )
    s = scheduler.summarise(raw)
    table = Table(
        f"{raw['jobs']} backup jobs due at {raw['due']}, {raw['hosts']} backup hosts, one worker each",
        ["measure", "value"],
    )
    rows: list[tuple[str, Any]] = [
        ("Prefect server's database", raw["database"]),
        ("work queue concurrency limit per host", raw["limit"] or "none"),
        (
            "fork server start slots per host (BINGOBACKUP_FORK_MAX_STARTING)",
            raw.get("max_starting") or "none",
        ),
        ("seconds to create the jobs", raw["create_seconds"]),
        ("workers polling, seconds before due", raw["workers_ready_before_due"]),
        ("flow runs", s["runs"]),
        ("started (Running)", s["started"]),
        (f"started within {START_WITHIN:.0f} s of due", s["started_within_60s"]),
        ("start lag median s", s["start_lag_median"]),
        ("start lag max s", s["start_lag_max"]),
        (f"picked up by the worker within {START_WITHIN:.0f} s", s["picked_up_within_60s"]),
        ("pick-up lag median s", s["picked_up_lag_median"]),
        ("pick-up lag max s", s["picked_up_lag_max"]),
        ("completed", s["completed"]),
        ("failed or crashed (their messages: the table below)", s["failed"]),
        ("run time median s (Running → end)", s["run_seconds_median"]),
    ]
    for label, value in rows:
        table.add(label, value)
    targets = targets_table(
        [
            Target(
                f"{raw['jobs']} jobs due at one minute start within {START_WITHIN:.0f} s",
                f"{s['started_within_60s']} of {raw['jobs']} (max lag {s['start_lag_max'] or 0:.0f} s)",
                f"{raw['jobs']} of {raw['jobs']}",
                s["started_within_60s"] == raw["jobs"],
            )
        ]
    )
    tables = [table, targets]
    unfinished = [r for r in raw["runs"] if r["state"] != "COMPLETED"]
    if unfinished:
        why = Table("Runs that did not complete", ["flow run", "state", "its state's message"])
        for run in unfinished:
            message = " ".join(str(run.get("message", "")).split()).replace("|", "/")
            why.add(run["name"], run["state"] or "never ran", message[:300])
        tables.append(why)
    method = [
        f"Run {started}, `python -m benchmarks --scheduler-only --scheduler-limit {limit} "
        f"--scheduler-database {database}` (`make bench-scheduler`). The Prefect server is "
        "`bingobackup server start`'s, on its SQLite file or on a throwaway PostgreSQL cluster "
        "(`--database postgresql+asyncpg://…`, as a team server: docs/deploy.md). The "
        "simulator's `scale` "
        "scenario (100 VMs of four 20 GiB disks holding 192 KiB each, half in each of two "
        "clusters); one backup job per VM created as `bingobackup job create` does, each with a "
        "`once` schedule at the same whole minute, all into one encrypted dedup pool; then "
        "`bingobackup worker start --host ID` for each of the two backup hosts (Prefect's "
        "defaults: polls every 10 s, claims runs due in the next 10 s; each run a process "
        "forked from the worker's fork server, which imported Prefect and the flows once: "
        "docs/agent.md). **Start lag** = the flow run's `start_time` (its process set it Running) − "
        "its `expected_start_time`; **pick-up lag** = its Pending state (the worker claimed it "
        "and started its process) − `expected_start_time`.",
        "",
        f"Machine load average before: {load_before}; after: {_load()} (other work shared the two cores).",
    ]
    return Block(SCHEDULER_HEADING, method, tables)


def _replace(section: str, block: Block) -> str:
    """`section` with `block`'s part replaced (or added at the end)."""
    pattern = re.compile(rf"^{re.escape(block.heading)}$.*?(?=^### (?!#)|\Z)", flags=re.M | re.S)
    text = block.to_markdown() + "\n"
    if pattern.search(section):
        return pattern.sub(lambda _: text, section, count=1)
    return section.rstrip("\n") + "\n\n" + text


@contextlib.contextmanager
def scale_section(path: Path, blocks: list[Block]) -> Iterator[None]:
    """Keeps this section of `path` across whatever the body writes there (the main report
    rewrites the file) and puts `blocks` into it, each replacing its earlier part."""
    pattern = re.compile(rf"^{re.escape(SECTION)}$.*?(?=^## |\Z)", flags=re.M | re.S)
    before = path.read_text() if path.exists() else ""
    found = pattern.search(before)
    section = found.group(0) if found else SECTION + "\n\n"
    yield
    for block in blocks:
        section = _replace(section, block)
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    text = pattern.sub("", text)
    notes = text.find("\n## Notes")
    section = section.rstrip("\n") + "\n"
    if notes >= 0:
        text = text[: notes + 1] + section + "\n" + text[notes + 1 :]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def only_rows(args: Any, work: Path, log: Callable[[str], None], console: Any) -> int:
    """`--e2e-only` / `--scheduler-only`: build what the row needs, run it, print, write its part."""
    from benchmarks.image import build_image
    from benchmarks.report import print_tables

    blocks = []
    if args.e2e_only:
        log(f"building a {args.size >> 20} MiB image in {work}")
        image = build_image(work / "disk.raw", args.size)
        blocks.append(end_to_end_block(image.path, work, log))
    if args.scheduler_only:
        blocks.append(scheduler_block(work, args.scheduler_limit, args.scheduler_database, log))
    print_tables(console, [table for block in blocks for table in block.tables])
    if not args.no_docs:
        with scale_section(args.docs, blocks):
            pass
        log(f"wrote {args.docs}")
    return 0
