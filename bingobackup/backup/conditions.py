"""Reasons not to back up a VM, checked just before its snapshot (guide table 2).

- the do-not-back-up condition: a datastore the VM uses has free space ≤ N % and/or
  ≤ N bytes (both given → both must hold to skip);
- disks that cannot be captured while the VM runs (raw or block-device disks) when the job
  does not power the VM off.

Each check returns a reason for the report, or None to go ahead.
"""

from __future__ import annotations

from collections.abc import Iterable

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.models import Storage
from bingobackup.resources.discovery import ResolvedVm
from bingobackup.specs.job import SkipIfFreeBelow

# Volume formats whose content changes under a running VM with no copy-on-write layer to
# snapshot consistently: the guide requires powering such VMs off.
OFFLINE_ONLY_FORMATS = frozenset({"raw", "block"})


def format_bytes(size: int) -> str:
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def datastores_of(vm: ResolvedVm) -> list[str]:
    """The storages holding the VM's selected disks (and its root storage), in a stable order."""
    ids = [d.storage_id for d in vm.disks] + [vm.instance.storage_id]
    return sorted({i for i in ids if i})


def measure_datastores(client: BingoCloudClient, storage_ids: Iterable[str]) -> list[Storage]:
    wanted = list(storage_ids)
    return list(client.describe_storages(wanted)) if wanted else []


def low_space_reason(condition: SkipIfFreeBelow, storages: Iterable[Storage]) -> str | None:
    """Why the VM is skipped when a datastore's free space meets the condition, else None.

    Thresholds are inclusive ("free ≤ N"). A condition with neither threshold never skips.
    """
    limit_percent, limit_bytes = condition.percent, condition.space_bytes
    if limit_percent is None and limit_bytes is None:
        return None
    for storage in storages:
        free, percent = storage.space_free_bytes, storage.free_percent
        hits = [
            limit_percent is None or percent <= limit_percent,
            limit_bytes is None or free <= limit_bytes,
        ]
        if all(hits):
            thresholds = " and ".join(
                t
                for t in (
                    f"≤ {limit_percent:g} %" if limit_percent is not None else "",
                    f"≤ {format_bytes(limit_bytes)}" if limit_bytes is not None else "",
                )
                if t
            )
            return (
                f"datastore {storage.storage_id} has {format_bytes(free)} free ({percent:.1f} % of "
                f"{format_bytes(storage.space_max_bytes)}), which meets the job's do-not-back-up "
                f"condition (free {thresholds}); not backed up, so the snapshot cannot fill it"
            )
    return None


def offline_only_reason(vm: ResolvedVm) -> str | None:
    """Why the VM cannot be backed up while it runs, else None."""
    disks = [d for d in vm.disks if d.format.lower() in OFFLINE_ONLY_FORMATS]
    if not disks:
        return None
    listed = ", ".join(f"{d.volume_id} ({d.format})" for d in disks)
    return (
        f"disks {listed} are raw or block-device disks, which cannot be backed up while the VM runs; "
        "set the job option power_off: true to stop the VM for its snapshot"
    )


def skip_reason(
    client: BingoCloudClient, vm: ResolvedVm, *, skip_if_free_below: SkipIfFreeBelow | None, power_off: bool
) -> str | None:
    """The first reason not to back up `vm` now, or None. Asks the cloud for current free space."""
    if not power_off and (reason := offline_only_reason(vm)):
        return reason
    if skip_if_free_below is not None:
        return low_space_reason(skip_if_free_below, measure_datastores(client, datastores_of(vm)))
    return None
