"""The verify flow (`bingobackup-verify`): read back a registered pool's backup sets, as
`bingobackup verify` does, with a progress artifact and a summary table in the Prefect UI.

Deployed by a pool's maintenance schedule (entrypoint `flows.verify.verify`), usually with
`since_days` so each run re-verifies only the sets not verified lately (PBS's "re-verify after
N days"). A run that finds damage ends Failed with the summary, so a webhook set with
`bingobackup notify set` reports it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.client.schemas.objects import State
from prefect.context import SyncClientContext, get_run_context
from prefect.states import Failed

from bingobackup.lifecycle.verify import VerifyReport
from bingobackup.resources.pools import open_registered_pool, pool_catalog_root, pool_for
from bingobackup.resources.users import resolve_user
from flows.jobs import RESULT_STORAGE
from tasks.blocks import PrefectRegistryStore
from tasks.owner import run_user
from tasks.progress import ArtifactPublisher
from tasks.verify import VerifySelection, verify_pool


def _run_name() -> str:
    parameters = get_run_context().flow_run.parameters  # type: ignore[union-attr]
    return f"verify {parameters['pool']} {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _summary(report: VerifyReport) -> dict[str, object]:
    return {
        "pool": report.pool,
        "ok": report.ok,
        "sets": report.summary_rows(),
        "skipped_sets": report.skipped_sets,
        "damaged": report.damage_rows(),
        "chunks_read": report.chunks_read,
        "bytes_read": report.bytes_read,
        "sampled_percent": report.sampled_percent,
        "seed": report.seed,
        "headline": report.headline(),
    }


@flow(
    name="bingobackup-verify",
    flow_run_name=_run_name,
    validate_parameters=True,
    persist_result=False,
    result_storage=RESULT_STORAGE,
)
def verify(
    pool: str,
    sample_percent: float = 100.0,
    since_days: int | None = None,
    set_id: str | None = None,
    vm: str | None = None,
    job: str | None = None,
) -> dict[str, object] | State:
    """Read back every chunk the pool's backup sets reference (or `sample_percent` of them),
    check each disk's sealed manifest and the catalog, and record the result in the catalog.
    `since_days` skips sets fully verified without damage that recently; `set_id`, `vm` or `job`
    narrow the sets. Fails, with the damaged chunks by VM, disk, offset and set, when anything
    is damaged."""
    logger = get_run_logger()
    selection = VerifySelection(
        set_id=set_id, vm=vm, job=job, sample_percent=sample_percent, since_days=since_days
    ).check()
    with SyncClientContext.get_or_create():
        user = run_user(None)  # a deployment's recorded owner; the local admin otherwise
        store = PrefectRegistryStore().snapshot()
        registration = pool_for(store, resolve_user(store, user), pool)
    opened = open_registered_pool(registration)
    flow_run = get_run_context().flow_run  # type: ignore[union-attr]
    publisher = ArtifactPublisher("verify-progress", f"verify {pool}: stored bytes read and checked")
    try:
        report = verify_pool(
            opened,
            pool_catalog_root(registration),
            selection,
            progress=lambda done, total: publisher.publish(100.0 * done / total if total else 100.0),
            flow_run_id=str(flow_run.id) if flow_run else "",
        )
    finally:
        publisher.close()
    logger.info("%s", report.headline())
    create_table_artifact(
        table=report.summary_rows(),
        key="verify-summary",
        description=report.headline(),
        _sync=True,  # type: ignore[call-arg]
    )
    summary = _summary(report)
    if report.ok:
        return summary
    create_table_artifact(
        table=report.damage_rows(),
        key="verify-damaged",
        description=f"Damaged chunks of pool {pool} by VM, disk, offset and set",
        _sync=True,  # type: ignore[call-arg]
    )
    message = f"{report.headline()}. What to do: {report.advice()}"
    logger.error(message)
    return Failed(message=message, data=summary)
