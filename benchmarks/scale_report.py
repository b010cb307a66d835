"""The scale rows (`benchmarks.scale`'s figures) as tables, targets, a plot and the Scale
section of docs/benchmarks.md."""

from __future__ import annotations

import itertools
import math
import statistics
from pathlib import Path

from pydantic import BaseModel

from benchmarks.measure import retire, run_step
from benchmarks.report import Table, Target, targets_table

OVERHEAD_TARGET = 0.15  # s per disk the flow may add over the engine
RATE_TARGET = 5.0  # disks/s per backup host
HELP_TARGET = 0.5  # s, `bingobackup --help`
CONNECT_TARGET = 1.5  # s, a command that imports, finds the server and asks it something
HELP = "bingobackup --help"
CONNECTS = "bingobackup pool list"
PLOT_NAME = "scale.png"
SECTION = "## Scale"


class ScalePoint(BaseModel):
    vms: int
    round: int = 0
    disks: int
    hosts: int  # backup hosts, one job each
    at_once: bool = False  # the hosts' jobs run at the same time (else one after the other)
    flow_seconds: float
    engine_seconds: float
    cloud_wait_seconds: float  # summed over every thread of the flow's jobs
    cpu_seconds: float = 0.0  # the measuring process's during the flow (the flow and the simulator)
    server_cpu_seconds: float = 0.0  # the Prefect server's during the flow
    load_average: float = 0.0  # the host's 1-minute load average as the flow started

    @property
    def overhead_per_disk(self) -> float:
        """What the flow adds per disk over the engine backing up the same disks."""
        return (self.flow_seconds - self.engine_seconds) / self.disks

    @property
    def disks_per_second_per_host(self) -> float:
        """Disks per second each busy host backs up (one at a time unless `at_once`)."""
        return self.disks / self.flow_seconds / (self.hosts if self.at_once else 1)


class ScaleRun(BaseModel):
    transition_delay: float
    limits: dict[str, int]
    cli: dict[str, list[float]]
    points: list[ScalePoint]
    data_bytes_per_disk: int

    @property
    def best(self) -> list[ScalePoint]:
        """Each size's (and way of running two jobs') fastest round, in order: the host's load
        from other work comes and goes by the minute and only ever slows a round down."""
        fastest: dict[tuple[int, bool], ScalePoint] = {}
        for p in self.points:
            key = (p.vms, p.at_once)
            if key not in fastest or p.flow_seconds < fastest[key].flow_seconds:
                fastest[key] = p
        return [fastest[key] for key in sorted(fastest)]

    def rounds_of(self, point: ScalePoint) -> list[ScalePoint]:
        """Every round of `point`'s size and way of running."""
        return [p for p in self.points if (p.vms, p.at_once) == (point.vms, point.at_once)]

    @property
    def series(self) -> list[ScalePoint]:
        """The sizes' fastest rounds, each host's job alone: what growth and the targets are read
        from (two jobs at once in one process share its interpreter and the two cores)."""
        return [p for p in self.best if not p.at_once]


def measure(work: Path, counts: list[int], transition_delay: float, cli_runs: int, rounds: int) -> ScaleRun:
    """The scale rows, measured in a fresh process (`benchmarks.scale`)."""
    try:
        raw = run_step(
            "scale",
            {
                "work": str(work),
                "vms": counts,
                "transition_delay": transition_delay,
                "cli_runs": cli_runs,
                "rounds": rounds,
            },
        )
    finally:
        retire(work)  # the simulator's volumes and the pools: out of the next steps' way
    return ScaleRun.model_validate(raw)


def growth_exponent(points: list[ScalePoint]) -> float | None:
    """b in flow wall time ∝ VMs^b, least squares on log-log; None under two sizes. A fixed
    cost per run pulls b under 1 by itself: `marginal_seconds` is the stricter reading."""
    if len({p.vms for p in points}) < 2:
        return None
    xs = [math.log(p.vms) for p in points]
    ys = [math.log(p.flow_seconds) for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def marginal_seconds(points: list[ScalePoint]) -> list[float | None]:
    """For each size, the flow's added wall seconds per added disk since the size before it
    (None for the smallest): constant when growth is linear, falling when it is better."""
    ordered = sorted(points, key=lambda p: p.vms)
    return [None] + [
        (b.flow_seconds - a.flow_seconds) / (b.disks - a.disks) for a, b in itertools.pairwise(ordered)
    ]


# Growth counts as linear while each size's added seconds per added disk stay within this of the
# first step's: one run per size on a shared host moves by about that much.
MARGINAL_SLACK = 1.25


def growth_verdict(points: list[ScalePoint]) -> tuple[str, bool | None]:
    """How the flow's wall time grows with VMs, in words, and whether that is linear or better."""
    steps = [m for m in marginal_seconds(points) if m is not None]
    exponent = growth_exponent(points)
    if not steps or exponent is None:
        return "not measured (one size only)", None
    first, worst = steps[0], max(steps)
    per_step = ", ".join(f"{m:.3f}" for m in steps)
    shape = f"wall ∝ VMs^{exponent:.2f}; s per added disk from one size to the next: {per_step}"
    if worst <= first * MARGINAL_SLACK:
        return f"linear or better ({shape})", True
    return f"worse than linear ({shape})", False


def largest(points: list[ScalePoint]) -> ScalePoint:
    """The largest size measured (each job alone): where the targets are read, each run's fixed cost (flow start,
    registry reads, summary) spread over the most disks, as in the 50-VM job of issue 22."""
    return max(points, key=lambda p: p.vms)


def scale_table(run: ScaleRun) -> Table:
    table = Table(
        "Orchestration on the scale scenario (first backups; each VM 4 sparse 20 GiB disks of "
        f"192 KiB of data ({run.data_bytes_per_disk // 1024} KiB of it in data extents); limits {_limits(run.limits)} per backup host; "
        f"simulator state changes {run.transition_delay:g} s)",
        [
            "VMs",
            "disks",
            "backup hosts (a job each)",
            "jobs run",
            "flow wall s",
            "flow s per disk",
            "engine wall s (same disks, same concurrency)",
            "flow adds s per disk",
            "flow s per added disk (from the size before)",
            "disks/s per backup host",
            "cloud waits s per disk (summed over threads)",
            "CPU s per disk: flow process (with the simulator) / server",
            "host load (1 min) at start",
            "each round: flow wall s (CPU s per disk, flow process + server; host load)",
        ],
    )
    marginals = dict(zip((p.vms for p in run.series), marginal_seconds(run.series), strict=True))
    for p in run.best:
        marginal = None if p.at_once else marginals[p.vms]
        table.add(
            p.vms,
            p.disks,
            p.hosts,
            "—" if p.hosts == 1 else ("at once" if p.at_once else "one after the other"),
            p.flow_seconds,
            f"{p.flow_seconds / p.disks:.3f}",
            p.engine_seconds,
            f"{p.overhead_per_disk:.3f}",
            None if marginal is None else f"{marginal:.3f}",
            f"{p.disks_per_second_per_host:.2f}",
            f"{p.cloud_wait_seconds / p.disks:.3f}",
            f"{p.cpu_seconds / p.disks:.3f} / {p.server_cpu_seconds / p.disks:.3f}",
            f"{p.load_average:.1f}",
            ", ".join(
                f"{r.flow_seconds:.1f} ({(r.cpu_seconds + r.server_cpu_seconds) / r.disks:.2f}; {r.load_average:.1f})"
                for r in run.rounds_of(p)
            ),
        )
    return table


def cli_table(run: ScaleRun) -> Table:
    runs = len(next(iter(run.cli.values()), []))
    table = Table(
        f"CLI fixed start cost (a fresh process each, spawn to exit, {runs} runs; the local server running)",
        ["command", "min s", "median s", "max s"],
    )
    for command, times in run.cli.items():
        table.add(command, min(times), statistics.median(times), max(times))
    return table


def _limits(limits: dict[str, int]) -> str:
    return (
        f"{limits['parallel_vms']} VMs ({limits['parallel_vms_per_node']} per node) × "
        f"{limits['parallel_disks_per_vm']} disks"
    )


def scale_targets(run: ScaleRun) -> list[Target]:
    top = largest(run.series)
    result = [
        Target(
            f"flow adds per disk over the engine ({top.vms} VMs, the largest size; each size above)",
            f"{top.overhead_per_disk:.3f} s",
            f"≤ {OVERHEAD_TARGET} s",
            top.overhead_per_disk <= OVERHEAD_TARGET,
        ),
        Target(
            f"disks/s per backup host ({top.vms} VMs, the largest size; each size above)",
            f"{top.disks_per_second_per_host:.2f}",
            f"≥ {RATE_TARGET:g}",
            top.disks_per_second_per_host >= RATE_TARGET,
        ),
    ]
    for command, limit in ((HELP, HELP_TARGET), (CONNECTS, CONNECT_TARGET)):
        times = run.cli.get(command)
        if times:
            median = statistics.median(times)
            result.append(Target(f"`{command}` (median)", f"{median:.2f} s", f"≤ {limit} s", median <= limit))
    verdict, passed = growth_verdict(run.series)
    result.append(Target("growth of the flow's wall time with VMs", verdict, "linear or better", passed))
    return result


def scale_tables(run: ScaleRun) -> list[Table]:
    targets = targets_table(scale_targets(run))
    targets.title = "Scale targets"
    return [scale_table(run), cli_table(run), targets]


def plot(run: ScaleRun, path: Path) -> None:
    """Wall time against VMs: the flow, the engine on the same disks, and linear growth from
    the smallest size for reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = run.series
    vms = [p.vms for p in points]
    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=100)
    axes.plot(vms, [p.flow_seconds for p in points], "o-", label="flow (run_backup_now)")
    axes.plot(vms, [p.engine_seconds for p in points], "s-", label="engine alone, same disks")
    if len(points) > 1:  # the first two sizes' line carried on: points above it grow faster
        a, b = points[0], points[1]
        slope = (b.flow_seconds - a.flow_seconds) / (b.vms - a.vms)
        axes.plot(
            vms,
            [a.flow_seconds + slope * (v - a.vms) for v in vms],
            "--",
            color="grey",
            label=f"linear: {a.vms} → {b.vms} VMs carried on",
        )
    together = [p for p in run.best if p.at_once]
    if together:
        axes.plot(
            [p.vms for p in together],
            [p.flow_seconds for p in together],
            "^",
            color="tab:red",
            label="flow, both clusters' jobs at once (one process)",
        )
    axes.set_xlabel("VMs backed up (4 disks each)")
    axes.set_ylabel("wall time, s")
    axes.set_title(f"Scale scenario, limits {_limits(run.limits)} per host")
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def method_lines(run: ScaleRun, counts: list[int]) -> list[str]:
    rounds = max(p.round for p in run.points) + 1
    return [
        "- The simulator's `scale` scenario (two clusters of 50 VMs, a backup host each; every VM 4 sparse "
        "20 GiB disks of 192 KiB of data) and our local Prefect server, started as the CLI starts them, in "
        f"one process (`python -m benchmarks.one scale`). Sizes: {', '.join(map(str, counts))} VMs: up to 50, "
        "one job of cluster-a's first VMs; above, one job per cluster, each on its own backup host, run one "
        "after the other (as on two machines: each job alone on its host; the wall time is both jobs') and, "
        "in a row of its own, both at once in the one process (a thread each; they share its interpreter "
        "and this machine's two cores, so that row is left out of the growth and the targets). Every job is a first backup into a fresh encrypted dedup pool with "
        f"limits {_limits(run.limits)}, and must end ok with every VM backed up. Every size is measured in "
        f"turn, {rounds} times over in the same server, and each size's fastest round is shown with its "
        "engine run of the same round (the host's load from other work only ever slows a round down).",
        f"- The simulator runs with {run.transition_delay:g} s per state change (its default is 0.2 s): "
        "orchestration is measured, not the simulated cloud's pace. The time every thread waited for the "
        "cloud (snapshot completed; volume made, attached, detached) is counted and shown per disk, summed "
        "over threads, so larger than the wall time's share of it. The simulator serves the cloud from "
        "threads of the measuring process, so its CPU is in that process's figure; the Prefect server's "
        "is its own process's. Other people's work shares this host: its 1-minute load average as each "
        "flow started is shown (2 cores).",
        "- *flow adds s per disk* = (flow wall − engine wall) / disks, where the engine wall is `backup_disk` "
        "of the same volumes' files into a fresh pool, as many disks at once as the jobs' limits allow, "
        "no cloud and no Prefect. *disks/s per backup host* = disks / flow wall / backup hosts. The targets "
        "are read at the largest size (each run's fixed cost spread over the most disks), every size shown. "
        "Growth counts as linear or better while the flow's seconds per added disk, from one size to the "
        f"next, stay within {MARGINAL_SLACK:.2f}× the first step's (the plot's dashed line carries that first "
        "step on); the exponent of a power-law fit is beside it, but a fixed cost per run pulls it under 1 "
        "by itself.",
        "- CLI: each command a fresh process from spawn to exit (subprocess + `time.perf_counter`), the "
        "commands taken in turn; the server is found under BINGOBACKUP_HOME as a user's shell finds it "
        "(no PREFECT_* variables). `pool list` imports, finds the server and reads the registered pools.",
    ]


def section(run: ScaleRun, command: str, when: str, counts: list[int], tables: list[Table]) -> str:
    """The Scale section of docs/benchmarks.md (its plot saved beside it as PLOT_NAME)."""
    parts = [
        SECTION,
        "",
        f"Command: `{command}` — run {when}. Written by the benchmark, like the Results above; "
        "`make bench-scale` (`python -m benchmarks --scale-only`, `--scale-vms 10,25` for fewer sizes) "
        "measures these rows alone and rewrites only this section.",
        "",
        *method_lines(run, counts),
        "",
    ]
    for table in tables:
        parts += [table.to_markdown(), ""]
    parts += [f"![Wall time against VMs]({PLOT_NAME})", ""]
    return "\n".join(parts)
