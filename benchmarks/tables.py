"""The run's figures as tables, with each target of the issue checked against them."""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass

from benchmarks.image import DATA_RUN_MIB, HOLE_RUN_MIB, MIX
from benchmarks.machine import MachineLimits
from benchmarks.report import Table, Target, engine_table, mib, percent, ratio, targets_table
from benchmarks.results import Measurement
from benchmarks.runner import BenchRun, FlowRun, ToolRun
from bingobackup.specs.job import BackupOptions

RSS_HEADROOM_MIB = 300
BLOCK = "block device"


def machine_table(limits: MachineLimits) -> Table:
    table = Table(
        f"Machine limit (every non-zero 4 MiB region of the image; 1 thread, and {limits.cores} threads at once)",
        ["primitive", "1 thread MB/s", f"{limits.cores} threads MB/s", "scaling"],
    )
    rows = {
        "SHA-256": limits.sha256,
        "BLAKE3 (keyed, 1 thread each)": limits.blake3,
        "zstd fast compress (level 1, window = chunk)": limits.zstd_fast_compress,
        "zstd decompress (of plaintext)": limits.zstd_decompress,
        "AES-256-GCM encrypt": limits.aes_gcm_encrypt,
        "AES-256-GCM decrypt": limits.aes_gcm_decrypt,
        "cached read (page cache)": limits.cached_read,
        "cached write (page cache)": limits.cached_write,
        "durable write (16 MiB packs: direct I/O, fsync, rename)": limits.durable_write,
    }
    for name, rate in rows.items():
        table.add(name, rate.one / 1e6, rate.all / 1e6, f"{rate.scaling:.2f}×")
    table.add("zstd fast ratio on the image's data", f"{limits.compress_ratio:.2f}", "", "")
    return table


def _rate(m: Measurement | None) -> float | None:
    return None if m is None else m.disk_mb_s


def _vs(ours: float | None, theirs: float | None) -> float | None:
    return None if ours is None or not theirs else ours / theirs


def side_by_side(run: BenchRun) -> Table:
    table = Table(
        "Side by side (MB/s of the disk size; ratios are to restic)",
        [
            "tool",
            "first backup",
            "second backup",
            "restore/export",
            "stored MiB",
            "peak RSS MiB",
            "first ×",
            "second ×",
            "restore ×",
            "stored ×",
        ],
    )
    restic = next((r for r in run.others if r.tool == "restic"), None)
    for tool in [*run.ours.values(), *run.others]:
        steps = [m for m in (tool.first, tool.second, tool.restore) if m is not None]
        name = tool.version or tool.tool  # a version line already names the tool
        table.add(
            name,
            _rate(tool.first),
            _rate(tool.second),
            _rate(tool.restore),
            mib(tool.stored_bytes),
            mib(max(m.peak_rss_bytes for m in steps)) if steps else None,
            *(
                ratio(_vs(_rate(getattr(tool, step)), _rate(getattr(restic, step))) if restic else None)
                for step in ("first", "second", "restore")
            ),
            ratio(tool.stored_bytes / restic.stored_bytes) if restic and restic.stored_bytes else "—",
        )
    return table


def flow_table(run: BenchRun) -> Table | None:
    if run.flow is None:
        return None
    engine = run.ours["sparse file"].first
    assert engine is not None
    flow = run.flow
    rounds = _flow_rounds(flow)
    table = Table(
        "Prefect flow vs the same job without Prefect (first backup of one VM, server already running)",
        [
            "flow best s",
            "without Prefect best s",
            "flow adds s (median of paired rounds, cloud waits apart)",
            "flow adds, of the job's median time",
            "of the job's median time less its cloud waits",
            "best vs best",
            "cloud waits s (flow / job, medians)",
            "disk backup alone (engine) s",
            "each round: flow / without Prefect s (of which cloud waits)",
        ],
    )
    added = flow_added_seconds(flow)
    table.add(
        flow.wall_seconds,
        flow.engine_job_seconds,
        added,
        percent(flow_added(flow)),
        percent(added / statistics.median(r.job - r.job_waits for r in rounds)),
        percent(best_against_best(flow)),
        f"{statistics.median(r.flow_waits for r in rounds):.2f} / {statistics.median(r.job_waits for r in rounds):.2f}",
        engine.wall_seconds,
        ", ".join(
            f"{r.flow:.2f} ({r.flow_waits:.2f}) / {r.job:.2f} ({r.job_waits:.2f})"
            for r in _flow_rounds(flow, 0)
        ),
    )
    return table


FLOW_TARGET = "flow's added time over the engine job (median of paired rounds, cloud waits apart)"


@dataclass(frozen=True)
class FlowRound:
    """One round: the flow's and the same job's seconds without Prefect, and of those the
    seconds each waited for the cloud (snapshots completed, volumes made, attached, detached)."""

    flow: float
    flow_waits: float
    job: float
    job_waits: float


def _flow_rounds(flow: FlowRun, warm_up: int = 1) -> list[FlowRound]:
    """The rounds after the first (warm-up) one; a run measured before cloud waits were counted
    counts none. With a single round, that round."""
    waits = zip(
        flow.flow_cloud_waits or [0.0] * len(flow.flow_rounds),
        flow.engine_cloud_waits or [0.0] * len(flow.engine_rounds),
        strict=True,
    )
    rounds = [
        FlowRound(f, fw, e, ew)
        for (f, e), (fw, ew) in zip(
            zip(flow.flow_rounds, flow.engine_rounds, strict=True), waits, strict=True
        )
    ]
    return rounds[warm_up:] or rounds


def flow_added_seconds(flow: FlowRun) -> float:
    """What Prefect adds, in seconds: the median over paired rounds of the flow's time less the
    same job's without Prefect, each less the time it waited for the cloud.

    Paired rounds, not best against best: the two jobs run back to back in each round, so a
    round's difference leaves out the host's drift, while the best of each side turns on one
    lucky round. The cloud waits are set apart because both jobs wait for the same cloud steps,
    yet the simulator makes them by copying the whole 2 GiB disk twice, which takes 0.6 to 3 s
    at random on this host (fresh memory, writeback): the flow's own cost, ~0.2 s, drowned in it.
    """
    return statistics.median((r.flow - r.flow_waits) - (r.job - r.job_waits) for r in _flow_rounds(flow))


def flow_added(flow: FlowRun) -> float:
    """`flow_added_seconds` as a fraction of the job's own time without Prefect (its median
    round, cloud waits included: the job waits for them too)."""
    return flow_added_seconds(flow) / statistics.median(r.job for r in _flow_rounds(flow))


def best_against_best(flow: FlowRun) -> float:
    """The flow's best round over the engine job's best round."""
    return flow.wall_seconds / flow.engine_job_seconds - 1


def _target(what: str, value: float | None, required: float, shown: str, fmt: str = "{:.2f}×") -> Target:
    if value is None:
        return Target(what, "not measured", shown, None)
    return Target(what, fmt.format(value), shown, value >= required)


def targets(run: BenchRun, channels: int) -> list[Target]:
    ours = run.ours[BLOCK]
    restic: ToolRun | None = next((r for r in run.others if r.tool == "restic"), None)
    theirs = restic or ToolRun(tool="restic")
    result = [
        _target(
            "first backup (block device) vs restic", _vs(_rate(ours.first), _rate(theirs.first)), 3, "≥ 3×"
        ),
        _target(
            "first backup (block device) vs the 2-core limit",
            ours.first.fraction_of_limit if ours.first else None,
            0.70,
            "≥ 70 %",
            "{:.0%}",
        ),
        _target(
            "second backup after 5 % churn vs restic",
            _vs(_rate(ours.second), _rate(theirs.second)),
            5,
            "≥ 5×",
        ),
        _target("export vs restic restore", _vs(_rate(ours.restore), _rate(theirs.restore)), 2, "≥ 2×"),
    ]
    stored = ours.stored_bytes / theirs.stored_bytes if theirs.stored_bytes else None
    result.append(
        Target("stored bytes vs restic", "not measured", "≤ 1.10×", None)
        if stored is None
        else Target("stored bytes vs restic", f"{stored:.2f}×", "≤ 1.10×", stored <= 1.10)
    )
    budget = channels * BackupOptions().resume_buffer_mib + RSS_HEADROOM_MIB
    peak = max(m.peak_rss_bytes for m in run.engine) / (1 << 20)
    result.append(
        Target(
            "engine peak RSS",
            f"{peak:.0f} MiB",
            f"≤ {channels} × {BackupOptions().resume_buffer_mib} + {RSS_HEADROOM_MIB} = {budget} MiB",
            peak <= budget,
        )
    )
    if run.flow is not None:
        added = flow_added(run.flow)
        result.append(Target(FLOW_TARGET, f"{added:.0%}", "< 10 %", added < 0.10))
    else:
        result.append(Target(FLOW_TARGET, "not measured", "< 10 %", None))
    return result


def tables_for(run: BenchRun, limits: MachineLimits, args: argparse.Namespace) -> list[Table]:
    tables = [machine_table(limits), engine_table(run.engine), side_by_side(run)]
    flow = flow_table(run)
    if flow is not None:
        tables.append(flow)
    tables.append(targets_table(targets(run, args.channels)))
    return tables


def method_lines(run: BenchRun, skipped: list[str]) -> list[str]:
    image = run.image
    lines = [
        f"- Image: {image.size_bytes / (1 << 30):.2f} GiB raw, deterministic (seed `bench`): data runs of "
        f"{DATA_RUN_MIB[0]}-{DATA_RUN_MIB[1]} MiB between holes of {HOLE_RUN_MIB[0]}-{HOLE_RUN_MIB[1]} MiB at "
        f"unaligned offsets; {image.data_bytes / (1 << 20):.0f} MiB written (text {MIX.text:.0%}, incompressible "
        f"{MIX.random:.0%}, blocks repeated at unaligned offsets {MIX.repeated:.0%}, written zero runs {MIX.zeros:.0%} "
        f"by weight); {image.nonzero_bytes / (1 << 20):.0f} MiB of non-zero 4 MiB regions.",
        f"- Churn: {run.churned_bytes / (1 << 20):.0f} MiB rewritten in place (5 % of the 4 MiB regions holding "
        "data, each rewritten in full, half text, half incompressible).",
        "- Each step runs in a fresh process, after `sync` (no dirty pages of earlier steps are written "
        "back during it). First backups (ours, restic's, borg's) run three times, each into an empty pool or "
        "repository (the earlier one retired: its files emptied, as deleting would, but its inodes freed "
        "only when the run ends, since this machine's journal-less ext4 makes every create rescan the inodes "
        "deleted in the last minute), and the fastest is kept, as the machine probe keeps its best pass: on this virtual "
        "machine page cache growing into memory the host reclaimed costs a host fault per page, which later "
        "attempts avoid, and a busy host makes one run in two or three 20-40 % slow. Exports and restores "
        "(every tool's) run twice, the faster kept. Wall and CPU time cover the engine call only (not interpreter "
        "start-up or the pool's scrypt), peak RSS is the process's VmHWM. restic and borg are timed as whole "
        "processes (`os.wait4` rusage).",
        "- Two reading modes: *sparse file* skips the holes the filesystem reports; *block device* reads "
        "every byte, as on a backup host reading an attached volume with no hole information.",
        "- The machine limit of a step is the sum of its per-byte costs (read, BLAKE3, zstd as the pool compresses, AES-GCM, "
        "and for an export the restored image's write into the page cache; each measured on one thread on the image's "
        "own data, times the cores; the best of the probe's "
        "three passes and of one more pass right before each first-backup attempt, as this host's speed "
        "drifts 10-15 % within a minute), or the time "
        "durable storage needs for the bytes stored (16 MiB packs handed to the pool's own blob store, as a backup "
        "stores them: direct I/O, fsync, rename), "
        "whichever is longer. A backup's packs cost no CPU to store (direct I/O from the buffer AES-GCM wrote), "
        'so its limit has no write term; "of limit" is that least time over the measured time. "Of measured limit" '
        "uses the rates measured with one thread per core running at once instead: it is the fairer "
        "figure where a primitive does not scale or other work shared the cores during the run.",
        "- The image and every pool and repository live in a temporary directory on the same disk, page "
        "cache warm (the image was just written): these are CPU and pipeline figures, not disk figures.",
        "- Every export and restore is checked byte for byte (BLAKE3 of the file) against the image.",
        "- The Prefect flow and the same job without Prefect run in alternated rounds, their order flipped "
        "every round (whichever runs second inherits the first one's tail), each into a fresh pool; what the "
        "flow adds is the median of the rounds' differences, the first (warm-up) round set aside and the time "
        "each job waited for the cloud subtracted from its own (the simulator copies the whole disk for a "
        "snapshot and again for the staged volume, 0.6-3 s each at random on this host, where a real cloud "
        "copies on write), over the job's median time; the same over the job less its waits, and the best of "
        "each side against each other, are beside it.",
    ]
    lines += [f"- {line}" for line in skipped]
    return lines
