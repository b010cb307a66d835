"""Prefect tag concurrency limits: set from a job's options at the start of each run, the
job's run slot (one run of a job at a time), and the slots a killed run left held."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from prefect import get_run_logger
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import ConcurrencyLeaseHolder, ConcurrencyLimit, FlowRun, StateType
from prefect.client.schemas.responses import OrchestrationResult
from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError
from prefect.concurrency.sync import concurrency
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectNotFound
from prefect.states import Crashed

from bingobackup.errors import BingoBackupError
from tasks.paging import read_all

# Prefect's task engine takes a tag's slot as a lease of this many seconds, renewed while the
# task runs; the server frees an expired lease on its next sweep (every 15 s).
SLOT_LEASE_SECONDS = 60
SLOT_SWEEP_SECONDS = 15


class JobAlreadyRunningError(BingoBackupError):
    """Another run of the same job holds the job's run slot."""


@dataclass(frozen=True)
class HeldSlots:
    """Slots of one tag limit that are taken: `count` as the server counts them, `task_runs`
    the holders of those it has a lease for (their ids). A slot counted without a lease (the
    server restarted while a run held it: Prefect keeps leases in memory) has no holder and
    is never freed by expiry: only deleting the limit frees it."""

    tag: str
    limit: int
    task_runs: tuple[str, ...]
    count: int = 0

    def __post_init__(self) -> None:
        if self.count < len(self.task_runs):
            object.__setattr__(self, "count", len(self.task_runs))

    @property
    def unleased(self) -> int:
        return self.count - len(self.task_runs)

    def describe(self) -> str:
        lost = f", {self.unleased} with no holder" if self.unleased else ""
        return f"{self.tag} ({self.count} of {self.limit}{lost})"


def _all_limits(client: SyncPrefectClient) -> list[ConcurrencyLimit]:
    return list(read_all(lambda offset, limit: client.read_concurrency_limits(limit=limit, offset=offset)))


@dataclass(frozen=True)
class _TagLimit:
    limit: int
    taken: int  # slots the server counts as taken, leased or not


def _tag_limits(client: SyncPrefectClient) -> dict[str, _TagLimit]:
    """Every tag limit as the server keeps it (its v2 limits, `tag:<tag>`), with the slots it
    counts as taken: one paged read, the holders left out (`_held_slots` reads them)."""
    limits = read_all(lambda offset, limit: client.read_global_concurrency_limits(limit=limit, offset=offset))
    return {
        limit.name.removeprefix("tag:"): _TagLimit(limit.limit, limit.active_slots)
        for limit in limits
        if limit.name.startswith("tag:")
    }


def _held_slots(
    client: SyncPrefectClient, tags: Iterable[str], current: dict[str, _TagLimit]
) -> list[HeldSlots]:
    """The taken slots of `tags`, with the holders of the leased ones (the v1 view lists
    them), read only when a slot is taken."""
    taken = [tag for tag in tags if tag in current and current[tag].taken]
    if not taken:
        return []
    holders = {limit.tag: limit.active_slots for limit in _all_limits(client)}
    return [
        HeldSlots(
            tag, current[tag].limit, tuple(str(run) for run in holders.get(tag, ())), current[tag].taken
        )
        for tag in taken
    ]


def apply_tag_limits(limits: dict[str, int]) -> list[HeldSlots]:
    """Create or change the tag limits that differ from what the server holds; return the
    slots of these tags that are taken right now (this run waits for them).

    Why read first: every run of a job asks for the same limits, and each creation is a write
    transaction on the server while the run is starting; one paged read usually finds them
    all in place already (and none taken: the holders are read only when one is).
    """
    with get_client(sync_client=True) as client:
        current = _tag_limits(client)
        for tag, value in limits.items():
            if tag not in current or current[tag].limit != value:
                client.create_concurrency_limit(tag=tag, concurrency_limit=value)
        return _held_slots(client, limits, current)


def ensure_tag_limits(limits: dict[str, int], job_name: str, *, sole: bool = False) -> None:
    """`apply_tag_limits`, telling the operator (run log) when the run starts behind taken slots.

    `sole`: the run holds its job's run slot (`sole_run`), so no other run of the job is
    going and every slot taken on the job's own tags is a dead run's: they are freed now
    (the limits deleted and set again) instead of waited for. A killed run's leased slots
    would be freed by the server within about 75 s, but slots counted without a lease (a
    server restarted while a run held them) never would: the job's runs waited for ever.
    Otherwise the operator is told why the run may wait and how to free them.
    """
    held = apply_tag_limits(limits)
    if not held:
        return
    tags = ", ".join(h.describe() for h in held)
    if sole:
        delete_tag_limits(*(h.tag for h in held), with_children=False)
        apply_tag_limits({h.tag: limits[h.tag] for h in held})  # set again, every slot free
        get_run_logger().warning(
            "concurrency slots of job %s still taken by a run that is gone were freed: %s", job_name, tags
        )
        return
    get_run_logger().warning(
        "concurrency slots already held: %s. Another run of job %s is going, or one was killed: "
        "Prefect frees a dead run's slots within about %d s (slots with no holder: never) and this "
        "run waits for them. If no other run of the job is going, free them now with "
        "`bingobackup job free-slots %s`.",
        tags,
        job_name,
        SLOT_LEASE_SECONDS + SLOT_SWEEP_SECONDS,
        job_name,
    )


def delete_tag_limits(*tags: str, with_children: bool = True) -> list[HeldSlots]:
    """Delete the limits `tags` and (`with_children`) every limit under them (`tag:...`);
    return the slots they held.

    Deleting is the one way a client frees slots whose holder died: the server drops the
    limit's leases with it, and the next run recreates the limit with every slot free.
    (`prefect concurrency-limit reset` revokes the leases but leaves the slots counted, so
    they are never freed.) A live holder is not stopped: its release finds no lease and does
    nothing.
    """
    with get_client(sync_client=True) as client:
        doomed = [
            limit
            for limit in _all_limits(client)
            if any(limit.tag == tag or (with_children and limit.tag.startswith(f"{tag}:")) for tag in tags)
        ]
        held = _held_slots(client, [limit.tag for limit in doomed], _tag_limits(client))
        for limit in doomed:
            try:
                client.delete_concurrency_limit_by_tag(limit.tag)
            except ObjectNotFound:
                continue
    return held


@contextlib.contextmanager
def sole_run(tag: str, job_name: str) -> Iterator[None]:
    """Hold the job's run slot (tag limit `tag`, one slot) while the block runs, or raise
    JobAlreadyRunningError at once when another run of the job holds it.

    Why: a run starts by deleting the temporary snapshots and volumes a killed run of its job
    left behind; a second run going at the same time (a schedule firing while the last run
    still works, `job start` beside it) would take the first one's for leftovers and detach
    them mid-read. The slot is a lease like every tag slot: a killed run's is freed within
    about 75 s, or at once by `bingobackup job free-slots` (the tag is under the job's).
    """
    context = FlowRunContext.get()
    holder = (
        ConcurrencyLeaseHolder(type="flow_run", id=context.flow_run.id)
        if context is not None and context.flow_run is not None
        else None
    )
    with contextlib.ExitStack() as stack:
        for attempt in range(2):
            try:
                stack.enter_context(
                    concurrency(
                        f"tag:{tag}",
                        occupy=1,
                        max_retries=0,
                        lease_duration=SLOT_LEASE_SECONDS,
                        strict=True,
                        holder=holder,
                        # A renewal that fails (the limit freed by hand) must not stop a backup.
                        raise_on_lease_renewal_failure=False,
                    )
                )
                break
            except ConcurrencySlotAcquisitionError as exc:
                cause = exc.__cause__
                if isinstance(cause, httpx.HTTPStatusError) and cause.response.status_code == 423:
                    raise JobAlreadyRunningError(
                        f"job {job_name} is already running (or a run of it was killed less than "
                        f"~{SLOT_LEASE_SECONDS + SLOT_SWEEP_SECONDS} s ago): this run did nothing. "
                        "Wait for that run to end; if no run of the job is going, free its slot with "
                        f"`bingobackup job free-slots {job_name}` and start again."
                    ) from None
                if attempt:
                    raise
                with get_client(sync_client=True) as client:  # the job's first run: no slot yet
                    client.create_concurrency_limit(tag=tag, concurrency_limit=1)
        yield


def crash_dead_runs(job_name: str) -> list[str]:
    """Mark Crashed the earlier runs of this run's job that Prefect still shows Running; the
    names of those marked. Call it holding the job's run slot (`sole_run`): a run that does not
    hold it and started over a lease ago (so cannot be just starting) lost it by not renewing
    it — its process died (killed, host rebooted) without telling the server, and it would
    otherwise show as Running forever."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None or context.flow is None:
        return []
    current, flow_name = context.flow_run, context.flow.name
    started_before = dead_if_started_before()
    with get_client(sync_client=True) as client:
        running = read_all(
            lambda offset, limit: client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])),
                    start_time=FlowRunFilterStartTime(before_=started_before),
                ),
                offset=offset,
                limit=limit,
            )
        )
        dead = [run for run in running if run.id != current.id and _job_of(run.parameters) == job_name]
        _crash(client, dead, f"found by the job's next run, {current.name}")
    return [run.name for run in dead]


def dead_if_started_before() -> datetime:
    """A dead run lost its slot by not renewing it for a lease: it started before this."""
    return datetime.now(UTC) - timedelta(seconds=SLOT_LEASE_SECONDS)


def crash_holders(task_runs: Iterable[str], by: str) -> dict[str, FlowRun | None]:
    """Mark Crashed the Running flow runs these slot-holding task runs belong to (`by` says who
    found them dead: the operator freeing their slots); each task run's flow run as it is now
    (None when the task run is gone or belongs to none)."""
    holders: dict[str, FlowRun | None] = {}
    with get_client(sync_client=True) as client:
        flow_runs: dict[UUID, FlowRun] = {}
        for task_run_id in set(task_runs):
            holders[task_run_id] = None
            with contextlib.suppress(ObjectNotFound):
                flow_run_id = client.read_task_run(UUID(task_run_id)).flow_run_id
                if flow_run_id is not None and flow_run_id not in flow_runs:
                    flow_runs[flow_run_id] = client.read_flow_run(flow_run_id)
                holders[task_run_id] = flow_runs.get(flow_run_id) if flow_run_id else None
        running = [run for run in flow_runs.values() if run.state_type == StateType.RUNNING]
        crashed = {run.id: run for run in _crash(client, running, by)}
    return {task_run: run and crashed.get(run.id, run) for task_run, run in holders.items()}


def _crash(client: SyncPrefectClient, runs: list[FlowRun], by: str) -> list[FlowRun]:
    """The runs marked Crashed, as they are now."""
    marked = []
    for run in runs:
        result: OrchestrationResult[Any] = client.set_flow_run_state(
            run.id,
            Crashed(
                message="its process ended without reporting (killed, or its host stopped); "
                f"{by}. The job's next run removes the temporary snapshots and volumes it left"
            ),
            force=True,
        )
        now = result.state
        marked.append(
            run
            if now is None
            else run.model_copy(update={"state": now, "state_type": now.type, "state_name": now.name})
        )
    return marked


def _job_of(parameters: dict[str, object]) -> object:
    spec = parameters.get("spec")
    return spec.get("name") if isinstance(spec, dict) else None
