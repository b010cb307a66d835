"""The cloud and data steps of a restore, each a plain function over a `RestoreJob`.

create volume → attach to the backup host → write the chunks → detach (one disk), then
snapshot the system disk → register an image → launch the VM → attach the data disks →
power on (one VM). Disk restore attaches the new volumes to an existing VM instead.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from bingobackup.cloud.client import BingoCloudClient, new_client_token
from bingobackup.cloud.models import Instance
from bingobackup.cloud.waiters import wait_for_instance, wait_for_snapshot, wait_for_volume
from bingobackup.crashpoints import crash_point
from bingobackup.format.errors import ManifestError
from bingobackup.jobs.staging import attach_at_free_device
from bingobackup.mover.restore import DiskRestoreResult, write_disk_from_pool
from bingobackup.restore.job import RestoreJob
from bingobackup.restore.ledger import Ledger, ResourceKind, VolumeCreate
from bingobackup.restore.plan import DiskPlan, VmPlan

log = logging.getLogger("bingobackup.restore")


class RestoredDisk(BaseModel):
    model_config = ConfigDict(frozen=True)

    source_volume_id: str
    volume_id: str
    name: str
    storage_id: str
    size_bytes: int
    result: DiskRestoreResult
    device: str = ""  # where it ended up attached (disk restore, data disks of a new VM)


def _attach(
    client: BingoCloudClient, volume_id: str, instance_id: str, device: str | None, timeout: float
) -> str:
    """Attach at `device`, or at the first free /dev/vdX when None or taken; returns the device."""
    chosen = attach_at_free_device(client, volume_id, instance_id, device)
    wait_for_volume(client, volume_id, "in-use", timeout=timeout)
    return chosen


def _detach(client: BingoCloudClient, volume_id: str, timeout: float) -> None:
    client.detach_volume(volume_id)
    wait_for_volume(client, volume_id, "available", timeout=timeout)


def write_disk(job: RestoreJob, ledger: Ledger, vm: VmPlan, disk: DiskPlan) -> RestoredDisk:
    """A new volume on the disk's storage holding the backed-up bytes, detached and available."""
    client, timeouts = job.client(), job.timeouts
    label = f"VM {vm.source.name} disk {disk.source.volume_id} (set {vm.source.set_id})"
    # The sealed manifest is what is written; the catalog only said the disk's size.
    manifest = job.pool.load_manifest(vm.source.set_id, disk.source.volume_id)
    if manifest.size_bytes != disk.source.size_bytes:
        raise ManifestError(
            f"{label}: the catalog says the disk holds {disk.source.size_bytes} bytes, the pool's "
            f"sealed manifest {manifest.size_bytes}. Nothing was created. The catalog was altered or "
            f"damaged; rebuild it from the pool's manifests (`bingobackup catalog rebuild --pool "
            f"{job.pool.name}`) and try again",
            vm.source.set_id,
            disk.source.volume_id,
        )
    what, token = f"disk {disk.name} restored from {disk.source.volume_id}", new_client_token()
    create: VolumeCreate = {
        "size_bytes": disk.source.size_bytes,
        "storage_id": disk.storage_id,
        "name": disk.name,
        "node_id": vm.node_id,
    }
    ledger.intend_volume(token, create, what)  # recorded before the call: see ledger.py
    volume = client.create_volume(**create, client_token=token)
    ledger.add("volume", volume.volume_id, what, client_token=token)
    crash_point("restore.volume-created")
    volume = wait_for_volume(client, volume.volume_id, "available", timeout=timeouts.volume)
    _attach(client, volume.volume_id, job.host.instance_id, None, timeouts.attach)
    crash_point("restore.volume-attached")  # attached to the backup host, nothing written
    try:
        # resolve(): the by-id link names the device; the data goes to what it points at.
        device = job.locator().wait_for(volume.serial or volume.volume_id, timeout=timeouts.device).resolve()
        progress = job.progress
        result = write_disk_from_pool(
            job.chunk_source(label),
            manifest,
            Path(device),
            channels=job.spec.options.channels,
            write_limiter=job.write_limiter,
            progress=(lambda done, _total: progress.update(volume.volume_id, done)) if progress else None,
            label=label,
            cancel=job.watchdog.cancel,
        )
        crash_point("restore.disk-written")  # every chunk written, still on the backup host
    finally:
        with contextlib.suppress(Exception):  # the ledger's cleanup detaches by force if this fails
            _detach(client, volume.volume_id, timeouts.attach)
    return RestoredDisk(
        source_volume_id=disk.source.volume_id,
        volume_id=volume.volume_id,
        name=disk.name,
        storage_id=disk.storage_id,
        size_bytes=disk.source.size_bytes,
        result=result,
    )


def _temp_name(job: RestoreJob, vm: VmPlan) -> str:
    return f"bingobackup-restore:{job.spec.name}:{vm.name}"


def create_vm(job: RestoreJob, ledger: Ledger, vm: VmPlan, disks: list[RestoredDisk]) -> Instance:
    """Launch the new VM from the restored system disk, attach its data disks, power it on if asked.

    The system disk becomes the VM's root through snapshot → RegisterImage → RunInstances
    (docs/cloud-api.md); the snapshot, the image and the written system volume are removed
    once the VM has its own root volume.
    """
    client = job.client()
    by_source = {d.source_volume_id: d for d in disks}
    root_plan = vm.root
    assert root_plan is not None  # checked by the plan
    root = by_source[root_plan.source.volume_id]
    snapshot_id, image_id = _image_of_system_disk(client, job, ledger, vm, root)
    instance_id = _launch_from_image(client, job, ledger, vm, root, image_id)
    _attach_data_disks_and_power_on(client, job, vm, instance_id, by_source)
    crash_point(
        "restore.vm-complete"
    )  # the VM whole, its snapshot, image and written system disk not yet removed
    for kind_id in (image_id, snapshot_id, root.volume_id):
        _remove_temporary(job, ledger, kind_id)
    return client.get_instance(instance_id)


def _image_of_system_disk(
    client: BingoCloudClient, job: RestoreJob, ledger: Ledger, vm: VmPlan, root: RestoredDisk
) -> tuple[str, str]:
    """Snapshot the restored system volume and register an image of it; returns both ids."""
    snapshot = client.create_snapshot(root.volume_id, description=_temp_name(job, vm))
    ledger.add("snapshot", snapshot.snapshot_id, f"snapshot of the restored system disk of {vm.name}")
    _record_duplicates(
        ledger,
        "snapshot",
        snapshot.snapshot_id,
        [s.snapshot_id for s in client.describe_snapshots(filters={"volume-id": root.volume_id})],
        f"second snapshot of the restored system disk of {vm.name}",
    )
    wait_for_snapshot(client, snapshot.snapshot_id, timeout=job.timeouts.snapshot)
    image_id = client.register_image(
        # Unique per snapshot: the name is what makes RegisterImage safe to retry, and a
        # leftover image of an earlier failed run must not block this one.
        name=f"{_temp_name(job, vm)}:{snapshot.snapshot_id}",
        root_snapshot_id=snapshot.snapshot_id,
        root_device_name=vm.source.root_device_name or "/dev/vda",
        description=f"restore of {vm.source.label}",
    )
    ledger.add("image", image_id, f"image of the restored system disk of {vm.name}")
    crash_point("restore.image-registered")
    return snapshot.snapshot_id, image_id


def _launch_from_image(
    client: BingoCloudClient, job: RestoreJob, ledger: Ledger, vm: VmPlan, root: RestoredDisk, image_id: str
) -> str:
    """Run the new VM from the image and wait until it runs; returns its instance id."""
    instance = client.run_instance(
        image_id=image_id,
        name=vm.name,
        instance_type=vm.instance_type,
        cpu=vm.cpu,
        memory_mib=vm.memory_mib,
        node_id=vm.node_id,
        storage_id=root.storage_id,
        nics=vm.nics,
        root_volume_name=root.name,  # the launch copies the image into a new root volume
    )
    ledger.add("instance", instance.instance_id, f"new VM {vm.name}")
    _record_duplicates(
        ledger,
        "instance",
        instance.instance_id,
        [
            i.instance_id
            for i in client.describe_instances(filters={"name": vm.name})
            if i.image_id == image_id and i.state != "terminated"
        ],
        f"second launch of {vm.name}",
    )
    wait_for_instance(client, instance.instance_id, "running", timeout=job.timeouts.instance)
    crash_point("restore.vm-launched")  # the new VM runs, its data disks not yet attached
    return instance.instance_id


def _attach_data_disks_and_power_on(
    client: BingoCloudClient,
    job: RestoreJob,
    vm: VmPlan,
    instance_id: str,
    by_source: dict[str, RestoredDisk],
) -> None:
    """Stop the new VM, attach its restored data disks, and start it again when the spec asks."""
    timeouts = job.timeouts
    # The launch boots the VM; its data disks go on while it is stopped, as on a real host.
    client.stop_instances([instance_id])
    wait_for_instance(client, instance_id, "stopped", timeout=timeouts.instance)
    for plan in vm.data_disks:
        _attach(
            client,
            by_source[plan.source.volume_id].volume_id,
            instance_id,
            plan.device_name,
            timeouts.attach,
        )
    if job.spec.power_on:
        client.start_instances([instance_id])
        wait_for_instance(client, instance_id, "running", timeout=timeouts.instance)


def _record_duplicates(ledger: Ledger, kind: ResourceKind, ours: str, found: list[str], what: str) -> None:
    """Record resources a create call made twice, so the run removes them or names them.

    The create calls carry a ClientToken, so a cloud that honours it never makes a second
    resource when a reply is lost and the client retries. A cloud that ignores the token
    would: what only this run can have made (a snapshot of a volume it created, a VM
    launched from its own image) is looked up right after the call.
    """
    for resource_id in found:
        if resource_id != ours:
            log.warning(
                "%s %s is a duplicate made by a retried create call: it will be removed", kind, resource_id
            )
            ledger.add(kind, resource_id, f"{what} (a retried create call whose first reply was lost)")


def _remove_temporary(job: RestoreJob, ledger: Ledger, resource_id: str) -> None:
    client = job.client()
    item = next(i for i in ledger.items if i.resource_id == resource_id)
    with contextlib.suppress(Exception):  # still in the ledger: cleaned or named at the end
        if item.kind == "image":
            client.deregister_image(resource_id)
        elif item.kind == "snapshot":
            client.delete_snapshot(resource_id)
        else:
            client.delete_volume(resource_id)
        ledger.forget(resource_id)


def attach_restored(job: RestoreJob, vm: VmPlan, disk: RestoredDisk) -> RestoredDisk:
    """Disk restore: attach the new volume to the chosen VM at a device nothing else uses."""
    device = _attach(job.client(), disk.volume_id, vm.attach_to, None, job.timeouts.attach)
    crash_point("restore.disk-attached")  # attached to the chosen VM, not yet handed over
    return disk.model_copy(update={"device": device})


def hand_over(ledger: Ledger, instance: Instance | None, disks: list[RestoredDisk]) -> None:
    """The VM and its volumes are now the operator's: nothing may remove them any more."""
    if instance is not None:
        ledger.forget(instance.instance_id)
    for disk in disks:
        ledger.forget(disk.volume_id)
