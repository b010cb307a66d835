"""Tables of the run, printed with rich and written as markdown to docs/benchmarks.md."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table as RichTable

from benchmarks.machine import MachineInfo
from benchmarks.results import Measurement

MIB = 1 << 20
NOTES_HEADING = "## Notes"


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([_cell(c) for c in cells])

    def to_rich(self) -> RichTable:
        table = RichTable(title=self.title, title_justify="left")
        for index, header in enumerate(self.headers):
            table.add_column(header, justify="left" if index == 0 else "right")
        for row in self.rows:
            table.add_row(*(_colour(cell) for cell in row))
        return table

    def to_markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.headers) + " |"]
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(self.headers) - 1)) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.0f}"
    return str(value)


def _colour(cell: str) -> str:
    return {"PASS": "[green]PASS[/green]", "MISS": "[red]MISS[/red]"}.get(cell, cell)


def mib(value: int | float) -> float:
    return value / MIB


def ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f} %"


def engine_table(measurements: list[Measurement]) -> Table:
    table = Table(
        "Engine (bingobackup, 2 channels, encrypted dedup pool, zstd fast: level 1, window = chunk)",
        [
            "step",
            "wall s",
            "MB/s of disk",
            "MB/s of non-zero data",
            "pool MiB after",
            "CPU s",
            "peak RSS MiB",
            "limit MB/s of disk",
            "of limit",
            "of measured limit",
        ],
    )
    for m in measurements:
        limit = None if m.limit_seconds is None else m.disk_bytes / 1e6 / m.limit_seconds
        table.add(
            m.name,
            m.wall_seconds,
            m.disk_mb_s,
            m.data_mb_s,
            mib(m.stored_bytes),
            m.cpu_seconds,
            mib(m.peak_rss_bytes),
            limit,
            percent(m.fraction_of_limit),
            percent(m.fraction_of_measured_limit),
        )
    return table


@dataclass
class Target:
    what: str
    measured: str
    required: str
    passed: bool | None  # None: could not be measured in this run (tool absent, step skipped)

    @property
    def verdict(self) -> str:
        return "n/a" if self.passed is None else ("PASS" if self.passed else "MISS")


def targets_table(targets: list[Target]) -> Table:
    table = Table("Targets", ["target", "measured", "required", "result"])
    for target in targets:
        table.add(target.what, target.measured, target.required, target.verdict)
    return table


def print_tables(console: Console, tables: list[Table]) -> None:
    for table in tables:
        console.print(table.to_rich())
        console.print()


def machine_lines(info: MachineInfo) -> list[str]:
    libraries = ", ".join(f"{name} {version}" for name, version in info.libraries.items())
    return [
        f"- CPU: {info.cpu_model}, {info.cores} cores",
        f"- Python {info.python}; {libraries}",
    ]


def _section(text: str, heading: str) -> re.Match[str] | None:
    """The section `heading` of a markdown text, up to the next `## ` heading or the end."""
    return re.search(rf"^{re.escape(heading)}$.*?(?=^## |\Z)", text, flags=re.M | re.S)


def write_section(path: Path, heading: str, body: str) -> None:
    """Put `body` (starting with its `heading` line) in place of that section of the file, or
    before the Notes when the file has none yet; the rest of the file is left as it is."""
    text = path.read_text() if path.exists() else ""
    body = body.rstrip() + "\n\n"
    current = _section(text, heading)
    if current:
        text = text[: current.start()] + body + text[current.end() :]
    else:
        notes = re.search(rf"^{NOTES_HEADING}$", text, flags=re.M)
        at = notes.start() if notes else len(text)
        text = text[:at] + ("\n" if at and not text[:at].endswith("\n\n") else "") + body + text[at:]
    path.write_text(text.rstrip() + "\n")


def write_markdown(
    path: Path,
    command: str,
    info: MachineInfo,
    preamble: list[str],
    tables: list[Table],
    when: str,
    kept: tuple[str, ...] = (),
) -> None:
    """Write the report; a `## Notes` section already in the file is kept (hand-written analysis),
    and so is each section headed as in `kept` (the rows of another run, e.g. `--scale-only`)."""
    notes = ""
    sections = []
    if path.exists():
        text = path.read_text()
        match = re.search(rf"^{NOTES_HEADING}$.*", text, flags=re.M | re.S)
        notes = match.group(0).rstrip() + "\n" if match else ""
        sections = [m.group(0).rstrip() + "\n" for m in (_section(text, h) for h in kept) if m]
    parts = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m benchmarks`); do not edit by hand except the Notes section.",
        "",
        f"Command: `{command}` — run {when}.",
        "",
        "## Machine",
        "",
        *machine_lines(info),
        "",
        "## Method",
        "",
        *preamble,
        "",
        "## Results",
        "",
    ]
    for table in tables:
        parts += [table.to_markdown(), ""]
    text = "\n".join(parts) + "".join("\n" + kept_section for kept_section in sections)
    path.write_text(text + ("\n" + notes if notes else ""))
