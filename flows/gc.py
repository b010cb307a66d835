"""The garbage collection flow (`bingobackup-gc`): frees what no backup set of a pool uses and
repacks sparse dedup packs, with a summary artifact. Safe while backups, restores, set
deletions and other collections run (docs/format.md, "Garbage collection"); pool maintenance
deploys it by this entrypoint, `flows.gc.collect_garbage`."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_table_artifact

from bingobackup.lifecycle.gc import DEFAULT_REPACK_THRESHOLD, report_rows
from tasks.gc import collect_pool_garbage


@flow(name="bingobackup-gc")
def collect_garbage(
    pool: str,
    repack: bool = True,
    dry_run: bool = False,
    repack_threshold: int = int(DEFAULT_REPACK_THRESHOLD * 100),
) -> dict[str, object]:
    """Collects the garbage of `pool`; `repack_threshold` is the % live below which a dedup
    pack is rewritten. Returns the report as a dict."""
    report = collect_pool_garbage(
        pool, repack=repack, repack_threshold=repack_threshold / 100, dry_run=dry_run
    )
    create_table_artifact(
        table=[{"figure": figure, "value": value} for figure, value in report_rows(report)],
        key="gc-summary",
        description=f"Garbage collection of pool {pool}{' (dry run)' if dry_run else ''}",
        _sync=True,  # type: ignore[call-arg]
    )
    return report.model_dump()
