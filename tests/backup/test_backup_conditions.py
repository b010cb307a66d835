"""Do-not-back-up conditions (free space per datastore) and the raw-disk rule."""

from __future__ import annotations

import pytest

from bingobackup.backup.conditions import low_space_reason, offline_only_reason
from bingobackup.cloud.models import Instance, Storage
from bingobackup.resources.discovery import Disk, ResolvedVm
from bingobackup.specs.job import SkipIfFreeBelow

GIB = 1 << 30


def storage(free_gib: float, max_gib: float = 1000) -> Storage:
    return Storage(
        storage_id="sto-1",
        name="ceph",
        cluster_id="cc01",
        space_max_bytes=int(max_gib * GIB),
        space_used_bytes=int((max_gib - free_gib) * GIB),
    )


@pytest.mark.parametrize(
    ("condition", "free_gib", "skipped"),
    [
        ({"percent": 10}, 90, True),  # 9 % free
        ({"percent": 10}, 100, True),  # exactly 10 %: "≤" includes it
        ({"percent": 10}, 110, False),
        ({"gib": 500}, 400, True),
        ({"space": "1TiB"}, 999, True),
        ({"space": "512KiB"}, 1, False),
        ({"percent": 10, "gib": 50}, 90, False),  # 9 % but 90 GiB > 50 GiB: both must hold
        ({"percent": 10, "gib": 100}, 90, True),
        ({}, 0, False),  # no threshold, never skips
    ],
)
def test_free_space_condition(condition: dict, free_gib: float, skipped: bool) -> None:
    reason = low_space_reason(SkipIfFreeBelow(**condition), [storage(free_gib)])
    assert (reason is not None) == skipped
    if reason:
        assert "sto-1" in reason and f"{free_gib:.1f} GiB free" in reason


def test_skip_reason_reports_the_measured_free_space() -> None:
    reason = low_space_reason(SkipIfFreeBelow(percent=10), [storage(90)])
    assert reason is not None
    assert "90.0 GiB free (9.0 % of 1000.0 GiB)" in reason and "≤ 10 %" in reason


def test_bad_space_units_are_refused_naming_the_units() -> None:
    with pytest.raises(ValueError, match="KiB, MiB, GiB, TiB"):
        SkipIfFreeBelow(space="10 gigs")


def _vm(*formats: str) -> ResolvedVm:
    instance = Instance.model_validate(
        {
            "instance_id": "i-1",
            "name": "db",
            "state": {"code": 16, "name": "running"},
            "cluster_id": "cc01",
            "instance_type": "m1.small",
            "cpu": 1,
            "memory_mib": 1024,
            "node_id": "node-a1@10.0.0.1",
            "storage_id": "sto-1",
        }
    )
    disks = tuple(
        Disk(volume_id=f"vol-{i}", size_bytes=GIB, system=i == 0, format=f) for i, f in enumerate(formats)
    )
    return ResolvedVm(instance=instance, disks=disks)


def test_raw_disks_need_power_off() -> None:
    assert offline_only_reason(_vm("qcow2", "qcow2")) is None
    reason = offline_only_reason(_vm("qcow2", "raw"))
    assert reason is not None and "vol-1 (raw)" in reason and "power_off: true" in reason
