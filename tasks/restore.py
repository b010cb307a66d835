"""The restore's steps as Prefect tasks: thin wrappers around `bingobackup.restore`.

prepare (plan) → create volumes and write disks → create VM (or attach disks) → clean up.
Bytes never travel as task results: each disk task writes straight from the pool to the
volume attached to the backup host.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from bingobackup.cloud.models import Instance
from bingobackup.errors import BingoBackupError
from bingobackup.mover.errors import RestoreChunkError
from bingobackup.resources.models import PoolRegistration
from bingobackup.resources.pools import pool_catalog_root
from bingobackup.resources.users import resolve_user
from bingobackup.restore.job import RestoreJob, prepare_restore_job
from bingobackup.restore.ledger import Ledger, remove_left_by_dead_runs
from bingobackup.restore.plan import DiskPlan, VmPlan
from bingobackup.restore.source import BackedUpDisk, BackedUpNic, BackedUpVm
from bingobackup.restore.steps import RestoredDisk, attach_restored, create_vm, write_disk
from bingobackup.specs.restore import RestoreSpec
from catalog import Catalog, VmBackup
from tasks.blocks import PrefectRegistryStore
from tasks.restore_ledger import PrefectRestoreLedgerKeeper


def backed_up_vm(backup: VmBackup) -> BackedUpVm:
    """The engine's view of a catalog record (the engine may not import the catalog)."""
    vm = backup.vm
    return BackedUpVm(
        set_id=vm.set_id,
        vm_id=vm.vm_id,
        name=vm.vm_name,
        cluster_id=vm.cluster_id,
        node_id=vm.node_id,
        instance_type=vm.instance_type,
        cpu=vm.cpu,
        memory_mib=vm.memory_mib,
        storage_id=vm.storage_id,
        root_device_name=vm.root_device_name,
        nics=tuple(
            BackedUpNic(
                device_index=n.device_index,
                vpc_id=n.vpc_id,
                subnet_id=n.subnet_id,
                private_ip_address=n.private_ip_address,
                mac_address=n.mac_address,
                security_group_ids=tuple(g.group_id for g in n.security_groups),
            )
            for n in vm.nics
        ),
        disks=tuple(
            BackedUpDisk(
                volume_id=d.volume_id,
                name=d.name,
                size_bytes=d.size_bytes,
                is_root=d.is_root,
                device_name=d.device_name,
                storage_id=d.storage_id,
            )
            for d in backup.disks
        ),
    )


class PoolCatalog:
    """`BackupCatalog` over the Parquet catalog stored in a pool."""

    def __init__(self, registration: PoolRegistration) -> None:
        self.registration = registration

    def _open(self) -> Catalog:
        root, filesystem = pool_catalog_root(self.registration)  # an object pool: its bucket
        return Catalog.open(root, pool=self.registration.name, filesystem=filesystem)

    def explain_unreadable_chunk(self, error: RestoreChunkError) -> RestoreChunkError:
        with self._open() as cat:
            return cat.explain_unreadable_chunk(error, self.registration.name)

    def find_vm(self, vm: str, set_id: str) -> BackedUpVm:
        with self._open() as cat:
            if set_id == "latest":
                latest = cat.latest_set(vm)
                if latest is None:
                    raise BingoBackupError(
                        f"Pool {self.registration.name} holds no good backup of VM {vm!r}. List what it "
                        f"holds with `bingobackup sets list --pool {self.registration.name}`."
                    )
                set_id = latest.set_id
            return backed_up_vm(cat.vm_backup(set_id, vm))


@task(name="plan restore", cache_policy=NONE)
def prepare_restore(spec: RestoreSpec, user_name: str | None) -> RestoreJob:
    store = PrefectRegistryStore().snapshot()  # planning only reads: one round trip
    return prepare_restore_job(store, resolve_user(store, user_name), spec, PoolCatalog)


@task(
    name="create volume and write disk",
    task_run_name="write {disk.source.volume_id} → {disk.name} ({vm.name})",
    cache_policy=NONE,
)
def write_disk_task(job: RestoreJob, ledger: Ledger, vm: VmPlan, disk: DiskPlan) -> RestoredDisk:
    try:
        return write_disk(job, ledger, vm, disk)
    except RestoreChunkError as exc:  # which other sets share the chunk is the catalog's to say
        raise PoolCatalog(job.pool_registration).explain_unreadable_chunk(exc) from exc


@task(name="create VM", task_run_name="create VM {vm.name}", cache_policy=NONE)
def create_vm_task(job: RestoreJob, ledger: Ledger, vm: VmPlan, disks: list[RestoredDisk]) -> Instance:
    return create_vm(job, ledger, vm, disks)


@task(name="attach disk", task_run_name="attach {disk.volume_id} to {vm.attach_to}", cache_policy=NONE)
def attach_disk_task(job: RestoreJob, vm: VmPlan, disk: RestoredDisk) -> RestoredDisk:
    return attach_restored(job, vm, disk)


@task(name="clean up", cache_policy=NONE)
def clean_up_task(job: RestoreJob, ledger: Ledger) -> list[str]:
    return ledger.clean_up(job.client(), timeout=job.timeouts.instance)


def ledger_of(job: RestoreJob, vm: VmPlan) -> Ledger:
    """The ledger of `vm`'s restore, kept on the Prefect server while it holds anything."""
    return Ledger(PrefectRestoreLedgerKeeper(), job.spec.name, vm.name)


@task(name="remove what killed runs left", cache_policy=NONE)
def remove_left_by_killed_runs_task(job: RestoreJob) -> tuple[list[str], list[str]]:
    """(removed, could not remove): what killed runs of this restore job on this host created."""
    return remove_left_by_dead_runs(
        job.client(), PrefectRestoreLedgerKeeper(), job.spec.name, timeout=job.timeouts.instance
    )
