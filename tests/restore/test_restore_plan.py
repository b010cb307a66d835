"""Planning a restore against the simulated cloud: defaults from the backed-up VM, and every
refusal (address in use, subnet or node of another cluster, unknown disk) before anything exists."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.restore.plan import RestorePlanError, plan_restore
from bingobackup.restore.source import BackedUpDisk, BackedUpNic, BackedUpVm
from bingobackup.specs.restore import load_restore_spec


def backed_up(client: BingoCloudClient, name: str = "linux_mul_nic") -> BackedUpVm:
    vm = next(i for i in client.describe_instances() if i.name == name)
    volumes = [(b, client.get_volume(b.volume_id)) for b in vm.block_devices]
    return BackedUpVm(
        set_id="set-1",
        vm_id=vm.instance_id,
        name=vm.name,
        cluster_id=vm.cluster_id,
        node_id=vm.node_id,
        instance_type=vm.instance_type,
        cpu=vm.cpu,
        memory_mib=vm.memory_mib,
        storage_id=vm.storage_id,
        nics=tuple(
            BackedUpNic(
                device_index=n.device_index,
                vpc_id=n.vpc_id,
                subnet_id=n.subnet_id,
                private_ip_address=n.private_ip_address,
                mac_address=n.mac_address,
                security_group_ids=tuple(g.group_id for g in n.security_groups),
            )
            for n in vm.network_interfaces
        ),
        disks=tuple(
            BackedUpDisk(
                volume_id=v.volume_id,
                name=v.name,
                size_bytes=v.size_bytes,
                is_root=v.is_root,
                device_name=b.device_name,
                storage_id=v.storage_id,
            )
            for b, v in sorted(volumes, key=lambda p: p[0].device_name)
        ),
    )


def spec(**fields: object):  # type: ignore[no-untyped-def]
    return load_restore_spec(
        {
            "version": 1,
            "name": "r",
            "cloud": "c",
            "backup_host": "i-1",
            "pool": "p",
            "source": {"vm": "x"},
            **fields,
        }
    )


AUTO = [{"index": 0, "ip": "auto", "mac": "auto"}, {"index": 1, "ip": "auto", "mac": "auto"}]


def test_defaults_come_from_the_backed_up_vm_and_a_taken_name_gets_a_timestamp(cloud_client) -> None:  # type: ignore[no-untyped-def]
    vm = backed_up(cloud_client)
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    plan = plan_restore(cloud_client, spec(target={"nics": AUTO}), [vm], vm.cluster_id, now=now)
    [one] = plan.vms
    assert one.name == f"{vm.name}-20260102030405"
    assert (one.node_id, one.cpu, one.memory_mib, one.instance_type) == (
        vm.node_id,
        vm.cpu,
        vm.memory_mib,
        vm.instance_type,
    )
    assert [n.subnet_id for n in one.nics] == [n.subnet_id for n in vm.nics]
    assert [d.storage_id for d in one.disks] == [d.storage_id for d in vm.disks]
    skipped = plan_restore(cloud_client, spec(target={"nics": AUTO}, same_name="skip"), [vm], vm.cluster_id)
    assert "exists" in skipped.vms[0].skip_reason and skipped.to_restore == []


def test_kept_ip_of_a_live_vm_is_refused_naming_the_vm(cloud_client) -> None:  # type: ignore[no-untyped-def]
    vm = backed_up(cloud_client)
    with pytest.raises(
        RestorePlanError, match=rf"IP {vm.nics[0].private_ip_address} is in use by VM {vm.name}"
    ):
        plan_restore(cloud_client, spec(), [vm], vm.cluster_id)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({"node": "node-b1@10.20.0.11"}, "is not an available node of target cluster cc01"),
        ({"disks": [{"volume": "vol-nope"}]}, "has no backed-up disk vol-nope"),
        ({"storage": "sto-b-local"}, "is not a storage of target cluster cc01"),
        ({"nics": [{"index": 7}]}, r"had no NIC with index \[7\]"),
    ],
)
def test_targets_outside_the_cluster_are_refused(
    cloud_client, target: dict[str, object], message: str
) -> None:  # type: ignore[no-untyped-def]
    vm = backed_up(cloud_client)
    with pytest.raises(RestorePlanError, match=message):
        plan_restore(cloud_client, spec(target={"nics": AUTO, **target}), [vm], vm.cluster_id)


def test_another_clusters_subnet_needs_to_be_named(cloud_client) -> None:  # type: ignore[no-untyped-def]
    vm = backed_up(cloud_client)
    with pytest.raises(RestorePlanError, match=r"is not in target cluster cc02.*Set target\.nics"):
        plan_restore(cloud_client, spec(target={"nics": AUTO}), [vm], "cc02")
