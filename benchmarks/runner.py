"""The benchmark's steps in order, each measured in a fresh process.

Order matters: every tool backs up the original image first, then the image is churned in
place, then every tool backs it up again, then every tool restores the second backup. The
flow runs between the first backups and the churn, on the original image.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
from pydantic import BaseModel

from benchmarks.engine import new_pool
from benchmarks.external import TOOLS, ExternalTool
from benchmarks.image import ImageInfo, churn
from benchmarks.machine import MachineLimits, remeasured
from benchmarks.measure import directory_bytes, retire, run_step
from benchmarks.results import Measurement

PASSPHRASE = "benchmark pool passphrase"
MODES = {"sparse file": True, "block device": False}
# First backups (ours, restic's, borg's) are measured this often, each into an empty pool or
# repository, and the fastest kept. On a virtual machine whose host reclaims guest memory
# (virtio-balloon, DAMON pageout), page cache growing into memory the guest has not touched
# lately costs a host fault per page: the same backup measured 1.4 s once its earlier copy
# was deleted and 2.2 s while three earlier pools filled the page cache. A second attempt
# writes into the pages the first one freed (the earlier pool is retired, `retire`: its
# page cache freed, its inodes kept until the run ends). Three, as the machine probe's
# passes: on a busy host one run in two or three came out 20-40 % slow.
FIRST_ATTEMPTS = 3
# Restores and exports write the whole disk back (GiBs of page cache): best of two, for
# every tool alike. Each attempt's output is checked byte for byte.
RESTORE_ATTEMPTS = 2


def best_of(step: Callable[[], dict[str, Any]], attempts: int) -> dict[str, Any]:
    """The fastest (least wall time) of `attempts` runs of `step`."""
    runs = [step() for _ in range(attempts)]
    return min(runs, key=lambda raw: float(raw["wall_seconds"]))


class ToolRun(BaseModel):
    """One tool's three steps (first backup, second backup after churn, restore)."""

    tool: str
    version: str = ""
    first: Measurement | None = None
    second: Measurement | None = None
    restore: Measurement | None = None
    stored_bytes: int = 0


class FlowRun(BaseModel):
    wall_seconds: float
    engine_job_seconds: float  # the same job's steps without Prefect
    peak_rss_bytes: int
    flow_rounds: list[float] = []  # every round's time (the best is wall_seconds)
    engine_rounds: list[float] = []
    flow_cloud_waits: list[float] = []  # the seconds of each round spent waiting for the cloud
    engine_cloud_waits: list[float] = []


def file_digest(path: Path) -> str:
    digest = blake3.blake3(max_threads=blake3.blake3.AUTO)
    with open(path, "rb") as f:
        while block := f.read(16 << 20):
            digest.update(block)
    return digest.hexdigest()


class BenchRun:
    def __init__(
        self,
        image: ImageInfo,
        limits: MachineLimits,
        work: Path,
        log: Callable[[str], None],
        channels: int = 2,
    ) -> None:
        self.image, self.limits, self.work, self.log, self.channels = image, limits, work, log, channels
        self.engine: list[Measurement] = []
        self.ours: dict[str, ToolRun] = {mode: ToolRun(tool=f"bingobackup ({mode})") for mode in MODES}
        self.others: list[ToolRun] = []
        self.external: list[ExternalTool] = []
        self.flow: FlowRun | None = None
        self.churned_bytes = 0

    def _pool(self, mode: str) -> Path:
        return self.work / f"pool-{mode.replace(' ', '-')}"

    def _measure(
        self,
        name: str,
        raw: dict[str, object],
        stored: int,
        limit: float | None,
        measured_limit: float | None = None,
    ) -> Measurement:
        return Measurement(
            name=name,
            wall_seconds=float(raw["wall_seconds"]),  # type: ignore[arg-type]
            cpu_seconds=float(raw["cpu_seconds"]),  # type: ignore[arg-type]
            peak_rss_bytes=int(raw["peak_rss_bytes"]),  # type: ignore[call-overload]
            disk_bytes=self.image.size_bytes,
            nonzero_bytes=self.image.nonzero_bytes,
            stored_bytes=stored,
            limit_seconds=limit,
            measured_limit_seconds=measured_limit,
            extra={k: v for k, v in raw.items() if k != "stdout"},
        )

    # -- our engine ------------------------------------------------------------------------------

    def engine_backup(self, label: str) -> None:
        for mode, sparse_aware in MODES.items():
            pool = self._pool(mode)
            self.log(f"bingobackup: {label} backup, reading as a {mode}")

            def attempt(pool: Path = pool, sparse_aware: bool = sparse_aware) -> dict[str, Any]:
                if label == "first":  # every attempt starts from an empty pool
                    retire(pool)
                    # The limit is measured again beside each attempt (see `remeasured`).
                    self.limits = remeasured(self.limits, self.image.path)
                if not pool.exists():
                    new_pool(pool, PASSPHRASE)
                return run_step(
                    "backup",
                    {
                        "image": str(self.image.path),
                        "pool": str(pool),
                        "passphrase": PASSPHRASE,
                        "set_id": label,
                        "sparse_aware": sparse_aware,
                        "channels": self.channels,
                    },
                )

            raw = best_of(attempt, FIRST_ATTEMPTS if label == "first" else 1)
            read, zero, sent = int(raw["bytes_read"]), int(raw["zero_bytes"]), int(raw["bytes_sent"])
            measured = self._measure(
                f"{label} backup ({mode})",
                raw,
                directory_bytes(pool),
                self.limits.backup_seconds(read, read - zero, sent),
                self.limits.backup_seconds(read, read - zero, sent, measured=True),
            )
            self.engine.append(measured)
            setattr(self.ours[mode], label, measured)
            self.ours[mode].stored_bytes = measured.stored_bytes

    def engine_export(self, label: str, expected_digest: str) -> None:
        for mode in MODES:
            output = self.work / "export.raw"
            self.log(f"bingobackup: export of the {label} backup (pool read as a {mode})")

            def attempt(mode: str = mode, output: Path = output) -> dict[str, Any]:
                raw = run_step(
                    "export",
                    {
                        "pool": str(self._pool(mode)),
                        "passphrase": PASSPHRASE,
                        "set_id": label,
                        "output": str(output),
                        "channels": self.channels,
                    },
                )
                if file_digest(output) != expected_digest:
                    raise RuntimeError(
                        f"the exported disk differs from the image it was backed up from ({mode})"
                    )
                output.unlink()
                return raw

            raw = best_of(attempt, RESTORE_ATTEMPTS)
            data = int(raw["bytes_written"]) + int(raw["zero_bytes"])
            measured = self._measure(
                f"export ({mode} pool)",
                raw,
                directory_bytes(self._pool(mode)),
                self.limits.export_seconds(data),
                self.limits.export_seconds(data, measured=True),
            )
            self.engine.append(measured)
            self.ours[mode].restore = measured

    # -- restic, borg ----------------------------------------------------------------------------

    def start_external(self) -> list[str]:
        """Set up every installed tool; returns a line for each one skipped."""
        skipped = []
        for tool_type in TOOLS:
            if not tool_type.available():
                skipped.append(
                    f"{tool_type.name} is not installed: skipped (install it for a side-by-side run)"
                )
                continue
            tool = tool_type(self.work)
            tool.init()
            self.external.append(tool)
            self.others.append(ToolRun(tool=tool.name, version=tool.version()))
        return skipped

    def external_backup(self, label: str) -> None:
        for tool, run in zip(self.external, self.others, strict=True):
            self.log(f"{tool.name}: {label} backup")

            def attempt(tool: ExternalTool = tool) -> dict[str, Any]:
                if label == "first":  # every attempt starts from an empty repository
                    tool.reset()
                return tool.backup(self.image.path, label)

            raw = best_of(attempt, FIRST_ATTEMPTS if label == "first" else 1)
            setattr(run, label, self._measure(f"{tool.name} {label} backup", raw, tool.stored_bytes(), None))
            run.stored_bytes = tool.stored_bytes()

    def external_restore(self, label: str, expected_digest: str) -> None:
        for tool, run in zip(self.external, self.others, strict=True):
            self.log(f"{tool.name}: restore of the {label} backup")

            def attempt(tool: ExternalTool = tool) -> dict[str, Any]:
                raw, restored = tool.restore(self.image.path, label)
                if file_digest(restored) != expected_digest:
                    raise RuntimeError(f"{tool.name} restored a file that differs from the image")
                restored.unlink()
                return raw

            raw = best_of(attempt, RESTORE_ATTEMPTS)
            run.restore = self._measure(f"{tool.name} restore", raw, run.stored_bytes, None)

    # -- the flow, the churn ---------------------------------------------------------------------

    def flow_backup(self) -> None:
        self.log("Prefect flow: first backup of a VM holding the image (local server, simulated cloud)")
        work = self.work / "flow"
        try:
            raw = run_step("flow", {"image": str(self.image.path), "work": str(work)})
        finally:
            retire(work)  # the simulator's volume copies: GiBs of page cache
        self.flow = FlowRun(
            wall_seconds=raw["wall_seconds"],
            engine_job_seconds=raw["engine_job_seconds"],
            peak_rss_bytes=raw["peak_rss_bytes"],
            flow_rounds=raw["flow_rounds"],
            engine_rounds=raw["engine_rounds"],
            flow_cloud_waits=raw["flow_cloud_waits"],
            engine_cloud_waits=raw["engine_cloud_waits"],
        )

    def churn(self) -> None:
        self.log("churn: rewriting 5 % of the image's data regions in place")
        self.churned_bytes = churn(self.image.path)
