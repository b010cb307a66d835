"""Verify as the CLI and the `bingobackup-verify` flow run it: the catalog says which sets and
disks to read (and which were verified lately), the engine reads them back
(`bingobackup.lifecycle.verify`), and the result goes back to the catalog as `verifications` rows.

No Prefect here: `bingobackup verify` runs it in the command's own process, the flow in a run.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pyarrow.fs as pafs
from pydantic import BaseModel, ConfigDict, Field

from bingobackup.errors import BingoBackupError
from bingobackup.lifecycle.verify import DEFAULT_THREADS, Damage, DiskToVerify, VerifyReport, verify_disks
from bingobackup.pools import Pool
from catalog import Catalog, CatalogError, CatalogRoot, CatalogWriter
from catalog.schema import VerificationRecord


class VerifySelection(BaseModel):
    """Which sets of a pool to verify, and how much of them."""

    model_config = ConfigDict(frozen=True)

    set_id: str | None = None
    vm: str | None = None
    job: str | None = None
    sample_percent: float = Field(default=100.0, gt=0, le=100)
    since_days: int | None = Field(default=None, ge=0, description="skip sets fully verified this recently")
    seed: int | None = None

    def check(self) -> VerifySelection:
        named = [
            flag for flag, value in (("--set", self.set_id), ("--vm", self.vm), ("--job", self.job)) if value
        ]
        if len(named) > 1:
            raise BingoBackupError(f"verify takes one of --set, --vm and --job, not {' and '.join(named)}")
        return self


def parse_sample(text: str) -> float:
    """`10%`, `10` or `0.5%` as a percentage in (0, 100]; one clear line otherwise."""
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        value = -1.0
    if not 0 < value <= 100:
        raise BingoBackupError(f"--sample {text!r}: give a share of the chunks from 0.01% to 100%, e.g. 10%")
    return value


def new_run_id(now: datetime) -> str:
    return f"verify-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def verify_pool(
    pool: Pool,
    catalog_root: tuple[str, pafs.FileSystem | None],
    selection: VerifySelection,
    *,
    progress: Callable[[int, int], None] | None = None,
    flow_run_id: str = "",
    threads: int = DEFAULT_THREADS,
) -> VerifyReport:
    """Verify the selected sets of `pool` and record what was found in its catalog (rows are
    written once everything was read: an interrupted verify records nothing)."""
    selection = selection.check()
    root, filesystem = catalog_root
    started = datetime.now(UTC)
    since = started - timedelta(days=selection.since_days) if selection.since_days is not None else None
    with Catalog([CatalogRoot(pool=pool.name, root=root, filesystem=filesystem)]) as catalog:
        set_ids, skipped = catalog.sets_to_verify(
            pool.name, set_id=selection.set_id, vm=selection.vm, job=selection.job, verified_since=since
        )
        disks = [disk for set_id in set_ids for disk in _disks(catalog, pool.name, set_id)]
        report = verify_disks(
            pool,
            disks,
            set_ids=set_ids,
            sample_percent=selection.sample_percent,
            seed=selection.seed,
            threads=threads,
            progress=progress,
        )
        report.skipped_sets = skipped
        report.damage.extend(_other_sets_sharing(catalog, pool.name, report, disks))
    if set_ids:
        run_id = new_run_id(started)
        finished = datetime.now(UTC)
        CatalogWriter(root, filesystem).write_verifications(
            run_id,
            [
                VerificationRecord(
                    run_id=run_id,
                    set_id=outcome.set_id,
                    pool=pool.name,
                    started_at=started,
                    verified_at=finished,
                    status=outcome.status,
                    chunks_checked=outcome.chunks_checked,
                    bytes_checked=outcome.bytes_checked,
                    damaged_chunks=outcome.damaged,
                    sampled_percent=report.sampled_percent,
                    sample_seed=report.seed,
                    flow_run_id=flow_run_id,
                )
                for outcome in report.sets
            ],
        )
    return report


def _disks(catalog: Catalog, pool: str, set_id: str) -> list[DiskToVerify]:
    """The set's disks with the catalog's chunk rows; a disk whose rows the catalog cannot give
    (a damaged or missing catalog file) is verified from its sealed manifest alone, and the
    catalog is reported."""
    disks = []
    for row in catalog.disks_of_set(set_id, pool):
        indexed, problem = None, ""
        try:
            indexed = catalog.disk_manifest(set_id, row["volume_id"], pool)
        except CatalogError as error:
            problem = str(error)
        disks.append(
            DiskToVerify(
                set_id=set_id,
                volume_id=row["volume_id"],
                vm_id=row["vm_id"] or "",
                vm_name=row["vm_name"] or "",
                disk_name=row["device_name"] or row["name"] or "",
                indexed=indexed,
                catalog_problem=problem,
            )
        )
    return disks


def _other_sets_sharing(
    catalog: Catalog, pool: str, report: VerifyReport, disks: list[DiskToVerify]
) -> list[Damage]:
    """A damaged chunk is damaged in every set holding it (dedup): the sets this run did not
    verify that reference one, from the catalog, so the operator knows not to restore from them."""
    damaged = {d.digest: d for d in report.damage if d.kind == "chunk"}
    verified = {(d.set_id, d.volume_id) for d in disks}
    try:
        rows = catalog.chunk_references(sorted(damaged), pool)
    except CatalogError:  # the damage found matters more than this note
        return []
    return [
        Damage(
            kind="chunk",
            set_id=row["set_id"],
            volume_id=row["volume_id"],
            vm_id=row["vm_id"] or "",
            vm_name=row["vm_name"] or "",
            disk_name=row["device_name"] or row["name"] or "",
            offset=row["offset"],
            digest=row["digest"],
            location=damaged[row["digest"]].location,
            reason=damaged[row["digest"]].reason,
            verified=False,
        )
        for row in rows
        if (row["set_id"], row["volume_id"]) not in verified
    ]
