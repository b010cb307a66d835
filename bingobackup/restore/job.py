"""A restore job at run time: the checked plan, where it runs, and what happened to each VM.

Plain engine code: the Prefect tasks in `tasks/restore.py` wrap these calls and
`flows/restore.py` orchestrates them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.errors import BingoBackupError
from bingobackup.format.manifest import ChunkRef
from bingobackup.jobs.linkretry import LinkRetry, check_resume_buffer
from bingobackup.jobs.progress import ProgressTracker
from bingobackup.jobs.staging import StepTimeouts
from bingobackup.mover.devices import DeviceLocator
from bingobackup.mover.ratelimit import RateLimiter
from bingobackup.mover.restore import ChunkSource
from bingobackup.pools import Pool, PoolError
from bingobackup.pools.opticalpool import OpticalPool
from bingobackup.resources.access import backup_host_for, cloud_for
from bingobackup.resources.hosts import backup_hosts_in_cluster
from bingobackup.resources.models import BackupHost, CloudRegistration, PoolRegistration, User
from bingobackup.resources.pools import check_backup_host_sees_pool, open_registered_pool, pool_for
from bingobackup.resources.store import RegistryStore
from bingobackup.restore.plan import RestorePlan, plan_restore
from bingobackup.restore.resume import ResumingSource
from bingobackup.restore.source import BackupCatalog
from bingobackup.specs.restore import RestoreOptions, RestoreSpec
from bingobackup.watchdog import Watchdog


class RestoreJobError(BingoBackupError):
    pass


@dataclass(frozen=True)
class RestoreTimeouts(StepTimeouts):
    """A backup's staging timeouts, and how long a restored VM may take to run."""

    instance: float = 600.0


class LimitedSource:
    """The pool's chunks, read no faster than the transfer-rate limit (stored bytes per second)."""

    def __init__(self, source: ChunkSource, limiter: RateLimiter) -> None:
        self._source = source
        self._limiter = limiter

    def read_chunk(self, ref: ChunkRef) -> bytes:
        self._limiter.acquire(max(ref.stored_size, 1))
        return self._source.read_chunk(ref)


@dataclass
class RestoreJob:
    """Everything a run needs, resolved and checked before anything is created."""

    spec: RestoreSpec
    cloud: CloudRegistration
    host: BackupHost
    pool_registration: PoolRegistration
    pool: Pool
    plan: RestorePlan
    started_at: datetime
    timeouts: RestoreTimeouts = field(default_factory=RestoreTimeouts)
    progress: ProgressTracker | None = None
    # One limiter of each kind per run: the guide's limits are for the job as a whole.
    write_limiter: RateLimiter | None = field(init=False)
    transfer_limiter: RateLimiter | None = field(init=False)
    watchdog: Watchdog = field(init=False)

    def __post_init__(self) -> None:
        options = self.spec.options
        self.watchdog = Watchdog(options.stall_minutes * 60.0)
        self.write_limiter = RateLimiter(options.write_limits) if options.write_limits.root else None
        self.transfer_limiter = RateLimiter(options.transfer_limits) if options.transfer_limits.root else None

    def client(self) -> BingoCloudClient:
        """A client whose retries last the job's reconnect time (guide table 5)."""
        return self.cloud.client(retry_window_seconds=self.spec.options.reconnect_minutes * 60.0)

    def locator(self) -> DeviceLocator:
        return DeviceLocator(Path(self.host.device_root))

    def chunk_source(self, what: str) -> ChunkSource:
        """The pool as one disk's restore reads it: a lost link ridden out for the reconnect
        time (guide 6.4), then the transfer-rate limit. `what` names the disk in errors."""
        resuming = ResumingSource(
            self.pool, LinkRetry(window_seconds=self.spec.options.reconnect_minutes * 60.0, what=what)
        )
        return LimitedSource(resuming, self.transfer_limiter) if self.transfer_limiter else resuming


def _target_host(store: RegistryStore, user: User, spec: RestoreSpec, cloud: CloudRegistration) -> BackupHost:
    host = backup_host_for(store, user, spec.backup_host)
    if host.cloud != cloud.name:
        raise RestoreJobError(
            f"Backup host {host.instance_id} belongs to cloud '{host.cloud}', not '{cloud.name}'. "
            f"Pick a backup host of cloud '{cloud.name}' (bingobackup host list)."
        )
    return host


def _check_cluster(
    client: BingoCloudClient, store: RegistryStore, spec: RestoreSpec, host: BackupHost
) -> None:
    """A restore into cluster X runs on a backup host of X (guide 6.1): refuse any other host."""
    if spec.cluster is None:
        return
    clusters = {c.cluster_id: c for c in client.describe_clusters()}
    by_name = {c.name: c.cluster_id for c in clusters.values()}
    cluster_id = by_name.get(spec.cluster, spec.cluster)
    if cluster_id not in clusters:
        raise RestoreJobError(
            f"Cluster {spec.cluster!r} does not exist in cloud '{spec.cloud}' "
            f"(clusters: {', '.join(f'{c.name} ({c.cluster_id})' for c in clusters.values())})."
        )
    if host.cluster_id != cluster_id:
        hosts = backup_hosts_in_cluster(store, spec.cloud, cluster_id)
        advice = (
            f"use one of its activated backup hosts: {', '.join(h.instance_id for h in hosts)}"
            if hosts
            else "it has no activated backup host: deploy the agent on a VM of that cluster, then "
            "`bingobackup host register` and `bingobackup host activate` it"
        )
        raise RestoreJobError(
            f"Restore into cluster {spec.cluster} needs a backup host in that cluster, but backup host "
            f"{host.instance_id} is in cluster {host.cluster_id}; {advice}."
        )


def open_restore_pool(registration: PoolRegistration, options: RestoreOptions) -> Pool:
    """The pool a restore reads, with the extra disc-image folder of an optical pool, once the
    resume buffer is known to hold one of its chunks."""
    pool = open_registered_pool(registration)
    check_resume_buffer(options.resume_buffer_mib, pool.chunk_size)
    if isinstance(pool, OpticalPool) and options.disc_images:
        pool.discs.image_dirs.append(Path(options.disc_images))
    return pool


def prepare_restore_job(
    store: RegistryStore,
    user: User,
    spec: RestoreSpec,
    catalog_for: Callable[[PoolRegistration], BackupCatalog],
) -> RestoreJob:
    """Check every resource the spec names, find the backed-up VMs, plan the restore.

    Creates nothing: a refusal here leaves the cloud as it was.
    """
    cloud = cloud_for(store, user, spec.cloud)
    host = _target_host(store, user, spec, cloud)
    pool_registration = pool_for(store, user, spec.pool)
    check_backup_host_sees_pool(pool_registration, host.instance_id)
    pool = open_restore_pool(pool_registration, spec.options)
    client = cloud.client(retry_window_seconds=spec.options.reconnect_minutes * 60.0)
    _check_cluster(client, store, spec, host)
    catalog = catalog_for(pool_registration)
    sources = [catalog.find_vm(item.source.vm, item.source.set) for item in spec.vms]
    plan = plan_restore(client, spec, sources, host.cluster_id)
    require_media(pool, plan)
    return RestoreJob(
        spec=spec,
        cloud=cloud,
        host=host,
        pool_registration=pool_registration,
        pool=pool,
        plan=plan,
        started_at=datetime.now(UTC),
    )


def require_media(pool: Pool, plan: RestorePlan) -> None:
    """Before anything is created: every disc the restore reads is at hand (optical pools).

    One error names every missing disc of every disk, so the operator fetches them all at once
    instead of finding them one failed run at a time."""
    if not isinstance(pool, OpticalPool):
        return
    problems = []
    for vm in plan.to_restore:
        for disk in vm.disks:
            try:
                pool.require_discs(pool.load_manifest(vm.source.set_id, disk.source.volume_id))
            except PoolError as exc:
                problems.append(f"VM {vm.source.name} disk {disk.source.volume_id}: {exc}")
    if problems:
        raise RestoreJobError(
            f"Restore {plan.spec_name} cannot start, discs are missing (nothing was created):\n  "
            + "\n  ".join(problems)
        )


class VmRestoreOutcome(BaseModel):
    """What happened to one VM (or the disks of one VM) in one run."""

    model_config = ConfigDict(frozen=True)

    source_vm: str
    set_id: str
    target: str  # the new VM's name (VM restore) or the VM the disks went to (disk restore)
    status: Literal["ok", "failed", "skipped"]
    instance_id: str = ""
    volumes: tuple[str, ...] = ()
    bytes_written: int = 0
    seconds: float = 0.0
    # Time spent writing data (the slowest disk: disks are written in parallel), so the
    # throughput an operator compares with the rate limits excludes cloud steps.
    write_seconds: float = 0.0
    error: str = ""
    leftovers: tuple[str, ...] = ()
