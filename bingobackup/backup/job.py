"""A backup job at run time: what it backs up, where, and what happened to each VM.

Plain engine code: the Prefect tasks in `tasks/backup.py` wrap these calls, and the flow in
`flows/backup.py` only orchestrates them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.models import Snapshot
from bingobackup.crashpoints import crash_point
from bingobackup.errors import BingoBackupError
from bingobackup.jobs.linkretry import check_resume_buffer
from bingobackup.jobs.progress import ProgressTracker
from bingobackup.jobs.staging import StepTimeouts, clean_leftovers, snapshot_volume
from bingobackup.mover.backup import DiskBackupResult
from bingobackup.mover.chunks import human_bytes
from bingobackup.mover.devices import DeviceLocator
from bingobackup.mover.ratelimit import RateLimiter
from bingobackup.mover.stages import transfer_summary
from bingobackup.pools import Pool
from bingobackup.resources.access import backup_host_for, cloud_for
from bingobackup.resources.discovery import Disk, ResolvedVm, resolve_selection
from bingobackup.resources.hosts import registered_backup_host_ids
from bingobackup.resources.models import BackupHost, CloudRegistration, PoolRegistration, User
from bingobackup.resources.pools import check_backup_host_sees_pool, open_registered_pool, pool_for
from bingobackup.resources.store import RegistryStore
from bingobackup.specs.job import BackupJobSpec
from bingobackup.watchdog import Watchdog

log = logging.getLogger("bingobackup.backup")


class BackupJobError(BingoBackupError):
    pass


def new_set_id(job_name: str, now: datetime | None = None) -> str:
    """Unique, sortable by time, safe as a file name: `<job>-20261125T064000Z-1a2b3c`."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{job_name}-{moment:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


@dataclass
class BackupJob:
    """Everything a run needs, resolved and checked before the first snapshot."""

    spec: BackupJobSpec
    cloud: CloudRegistration
    host: BackupHost
    pool_registration: PoolRegistration
    pool: Pool
    vms: list[ResolvedVm]
    set_id: str
    started_at: datetime
    leftovers_removed: list[str] = field(default_factory=list)
    timeouts: StepTimeouts = field(default_factory=StepTimeouts)
    progress: ProgressTracker | None = None
    # One limiter per run: the guide's limits are for the job as a whole, across its channels.
    read_limiter: RateLimiter | None = field(init=False)
    send_limiter: RateLimiter | None = field(init=False)
    watchdog: Watchdog = field(init=False)

    def __post_init__(self) -> None:
        options = self.spec.options
        self.watchdog = Watchdog(options.stall_minutes * 60.0)
        self.read_limiter = RateLimiter(options.read_limits) if options.read_limits.root else None
        self.send_limiter = RateLimiter(options.transfer_limits) if options.transfer_limits.root else None

    def client(self) -> BingoCloudClient:
        return job_client(self.cloud, self.spec)

    def locator(self) -> DeviceLocator:
        return DeviceLocator(Path(self.host.device_root))

    @property
    def total_bytes(self) -> int:
        return sum(d.size_bytes for vm in self.vms for d in vm.disks)


def job_client(cloud: CloudRegistration, spec: BackupJobSpec) -> BingoCloudClient:
    """A client whose retries last the job's reconnect time (guide table 3)."""
    return cloud.client(retry_window_seconds=spec.options.reconnect_minutes * 60.0)


def check_dedup_mode(spec: BackupJobSpec, pool: PoolRegistration) -> None:
    """Server-side dedup needs a pool with an index to look chunks up in (guide table 2: dedup
    pools only). No kind runs a server process: "server" is the pool writer on the backup host
    (docs/pools.md, "Dedup mode")."""
    if spec.options.dedup_mode != "server" or pool.on_pool_format == "dedup":
        return
    why = (
        "writes each disk as a self-contained stream on its media, with no index of chunks to dedup against"
        if pool.kind in ("tape", "optical")
        else "is in standard format, which keeps every chunk of every backup and has no index to dedup against"
    )
    raise BackupJobError(
        f"Job '{spec.name}' asks for server-side dedup, but pool '{pool.name}' is a {pool.kind} pool and "
        f"{why}. Set options.dedup_mode: agent, or pick a dedup pool (bingobackup pool list)."
    )


@dataclass(frozen=True)
class CheckedJob:
    """What a job spec names, found and usable: the result of `check_backup_job`."""

    cloud: CloudRegistration
    host: BackupHost
    pool_registration: PoolRegistration
    vms: list[ResolvedVm]
    client: BingoCloudClient


def check_backup_job(store: RegistryStore, user: User, spec: BackupJobSpec) -> CheckedJob:
    """Every check of a job spec that only reads: the CLI runs it before starting the flow,
    so a wrong spec gets one line instead of a failed run, and the run repeats it (things change).

    Refuses an unknown cloud/pool/host, a host that is not activated or not in the cloud, a
    host that cannot reach the pool, server-side dedup on a pool that does not dedup, a
    selection naming unknown VMs or none at all, or VMs of another cluster than the host's.
    """
    cloud = cloud_for(store, user, spec.cloud)
    host = backup_host_for(store, user, spec.backup_host)
    if host.cloud != cloud.name:
        raise BackupJobError(
            f"Backup host {host.instance_id} belongs to cloud '{host.cloud}', not '{cloud.name}'. "
            f"Pick a backup host of cloud '{cloud.name}' (bingobackup host list)."
        )
    pool_registration = pool_for(store, user, spec.pool)
    check_backup_host_sees_pool(pool_registration, host.instance_id)
    check_dedup_mode(spec, pool_registration)
    client = job_client(cloud, spec)
    vms = resolve_selection(
        client, spec.content, spec.filters, backup_host_ids=registered_backup_host_ids(store, cloud.name)
    )
    elsewhere = [vm for vm in vms if vm.cluster_id != host.cluster_id]
    if elsewhere:
        names = ", ".join(f"{vm.name} ({vm.cluster_id})" for vm in elsewhere)
        raise BackupJobError(
            f"Backup host {host.instance_id} is in cluster {host.cluster_id} and can read disks only there, "
            f"but the job selects VMs of other clusters: {names}. Make one job per cluster, each with a "
            "backup host of that cluster."
        )
    if not vms:
        raise BackupJobError(
            f"Job '{spec.name}' selects no VM right now (content: "
            f"{', '.join(c.describe() for c in spec.content)}; filters: include {spec.filters.include}, "
            f"exclude {spec.filters.exclude}). Check the content and filters with `bingobackup resources search`."
        )
    return CheckedJob(cloud=cloud, host=host, pool_registration=pool_registration, vms=vms, client=client)


def prepare_backup_job(store: RegistryStore, user: User, spec: BackupJobSpec) -> BackupJob:
    """Check every resource the spec names, open the pool, clean leftovers, resolve the VMs.

    Refuses before anything is touched: whatever `check_backup_job` refuses, a wrong pool
    passphrase, a resume buffer smaller than a chunk.
    """
    checked = check_backup_job(store, user, spec)
    pool = open_registered_pool(checked.pool_registration)
    check_resume_buffer(spec.options.resume_buffer_mib, pool.chunk_size)
    # The job's compression option (guide table 2) wins over the pool's default for the
    # chunks this run writes: each envelope names its own compression, so readers need
    # nothing, and this Pool object is this run's own.
    pool.codec.compression = spec.options.compression
    # Leftovers are temporary volumes on the backup host and snapshots: never part of the
    # selection resolved above (backup hosts are never selected).
    removed = clean_leftovers(checked.client, spec.name)
    started = datetime.now(UTC)
    return BackupJob(
        spec=spec,
        cloud=checked.cloud,
        host=checked.host,
        pool_registration=checked.pool_registration,
        pool=pool,
        vms=checked.vms,
        set_id=new_set_id(spec.name, started),
        started_at=started,
        leftovers_removed=removed,
    )


class DiskOutcome(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    disk: Disk
    snapshot_id: str = ""
    result: DiskBackupResult | None = None
    error: str = ""


class AttemptRecord(BaseModel):
    """One attempt at one VM, kept for the final report (guide table 3: retry)."""

    attempt: int
    status: Literal["ok", "failed", "skipped"]
    error: str = ""
    finished_at: datetime

    def describe(self) -> str:
        return f"#{self.attempt} {self.status}" + (f" ({self.error})" if self.error else "")


class VmOutcome(BaseModel):
    """What happened to one VM in one run (the last attempt wins; `history` keeps every one)."""

    vm: ResolvedVm
    status: Literal["ok", "failed", "skipped"]
    error: str = ""
    started_at: datetime
    finished_at: datetime
    attempts: int = 1
    disks: list[DiskOutcome] = []
    history: list[AttemptRecord] = []

    def total(self, counter: Literal["bytes_read", "bytes_sent", "bytes_stored"]) -> int:
        return sum(getattr(d.result, counter) for d in self.disks if d.result is not None)

    def log_finished(self) -> None:
        """The VM's last line in the run's log: its bytes and speed, and why it failed."""
        seconds = (self.finished_at - self.started_at).total_seconds()
        done = transfer_summary(
            self.total("bytes_read"), self.total("bytes_sent"), self.total("bytes_stored"), seconds
        )
        if self.status == "failed":
            log.error("%s failed (attempt %d) after %s: %s", _who(self.vm), self.attempts, done, self.error)
        else:
            log.info("%s finished: %s", _who(self.vm), done)

    def after(self, earlier: VmOutcome | None) -> VmOutcome:
        """This attempt's outcome with the history of the earlier ones in front of it."""
        previous = earlier.history if earlier is not None else []
        this = AttemptRecord(
            attempt=self.attempts, status=self.status, error=self.error, finished_at=self.finished_at
        )
        return self.model_copy(update={"history": [*previous, this]})


def _who(vm: ResolvedVm) -> str:
    return f"VM {vm.name} ({vm.instance_id})"


def log_vm_started(vm: ResolvedVm, attempt: int, disks: Sequence[Disk]) -> None:
    """The VM's first line in the run's log: which disks this attempt backs up."""
    names = ", ".join(f"{d.volume_id} ({d.role}, {human_bytes(d.size_bytes)})" for d in disks)
    log.info("%s started (attempt %d): %d disk(s): %s", _who(vm), attempt, len(disks), names or "none")


def snapshot_disks(
    client: BingoCloudClient, job: BackupJob, vm: ResolvedVm, taken: dict[str, Snapshot]
) -> None:
    """Snapshot every selected disk of `vm` into `taken` (volume id → completed snapshot).

    `taken` belongs to the caller so that, when a later snapshot fails, the earlier ones are
    still known and get deleted.
    """
    for disk in vm.disks:
        snapshot_volume(client, job.spec.name, disk.volume_id, taken, job.timeouts)
        crash_point("backup.after-snapshot")
