"""Planning a restore against the simulated cloud: defaults from the backed-up VM, and every
refusal (address in use, subnet or node of another cluster, unknown disk) before anything exists."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.waiters import wait_for_instance
from bingobackup.restore.plan import RestorePlanError, plan_restore
from bingobackup.restore.source import BackedUpDisk, BackedUpNic, BackedUpVm
from bingobackup.specs.restore import RestoreSpec, load_restore_spec


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


def spec(**fields: object) -> RestoreSpec:
    """A one-VM restore spec (short form), or a many-VM one when `vms` is given."""
    one = {} if "vms" in fields else {"source": {"vm": "x"}}
    return load_restore_spec(
        {"version": 1, "name": "r", "cloud": "c", "backup_host": "i-1", "pool": "p", **one, **fields}
    )


AUTO = [{"index": 0, "ip": "auto", "mac": "auto"}, {"index": 1, "ip": "auto", "mac": "auto"}]


def test_defaults_come_from_the_backed_up_vm_and_a_taken_name_gets_a_timestamp(
    cloud_client: BingoCloudClient,
) -> None:
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


def test_kept_ip_of_a_live_vm_is_refused_naming_the_vm(cloud_client: BingoCloudClient) -> None:
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
    cloud_client: BingoCloudClient, target: dict[str, object], message: str
) -> None:
    vm = backed_up(cloud_client)
    with pytest.raises(RestorePlanError, match=message):
        plan_restore(cloud_client, spec(target={"nics": AUTO, **target}), [vm], vm.cluster_id)


def test_another_clusters_subnet_needs_to_be_named(cloud_client: BingoCloudClient) -> None:
    vm = backed_up(cloud_client)
    with pytest.raises(RestorePlanError, match=r"is not in target cluster cc02.*Set target\.nics"):
        plan_restore(cloud_client, spec(target={"nics": AUTO}), [vm], "cc02")


def _ids_by_name(cloud_client: BingoCloudClient) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """Subnet name → id, and (vpc id, group name) → security group id."""
    subnets = {s.name: s.subnet_id for s in cloud_client.describe_subnets()}
    groups = {(g.vpc_id, g.group_name): g.group_id for g in cloud_client.describe_security_groups()}
    return subnets, groups


def test_batch_settings_apply_to_every_vm_and_a_vms_own_target_wins(cloud_client: BingoCloudClient) -> None:
    nic_vm, disk_vm = backed_up(cloud_client, "linux_mul_nic"), backed_up(cloud_client, "linux_mul_disk")
    subnets, groups = _ids_by_name(cloud_client)
    vpc_a = nic_vm.nics[0].vpc_id
    web, default = groups[(vpc_a, "web")], groups[(vpc_a, "default")]
    data1 = disk_vm.disks[1]
    the_spec = spec(
        vms=[
            {"source": {"vm": nic_vm.name}},
            {
                "source": {"vm": disk_vm.vm_id},
                "target": {
                    "name": "db-restored",
                    "node": "node-a1@10.10.0.11",
                    "cpu": 2,
                    "memory_mib": 3072,
                    "storage": "sto-a-local",
                    "disks": [{"volume": data1.volume_id, "name": "db-data1-new", "storage": "sto-a-ceph"}],
                    "nics": [
                        {
                            "index": 0,
                            "subnet": subnets["web-a"],
                            "ip": "10.10.1.200",
                            "mac": "02:00:00:00:00:AA",
                            "security_group": default,
                        }
                    ],
                },
            },
        ],
        batch={
            "name_prefix": "dr-",
            "name_suffix": "-2",
            "node": "node-a3@10.10.0.13",
            "storage": "sto-a-ceph",
            "subnet": subnets["db-a"],
            "security_groups": [web],
            "ip": "auto",
            "mac": "auto",
            "instance_type": "m1.large",
        },
    )
    plan = plan_restore(cloud_client, the_spec, [nic_vm, disk_vm], "cc01")
    batch_only, overridden = plan.vms

    # Only batch settings: every one of them applies.
    assert (batch_only.name, batch_only.node_id, batch_only.instance_type) == (
        "dr-linux_mul_nic-2",
        "node-a3@10.10.0.13",
        "m1.large",
    )
    assert (batch_only.cpu, batch_only.memory_mib) == (None, None), "the instance type sets CPU and memory"
    assert [(d.source.volume_id, d.storage_id) for d in batch_only.disks] == [
        (d.volume_id, "sto-a-ceph") for d in nic_vm.disks
    ]
    assert [
        (n.device_index, n.subnet_id, n.private_ip_address, n.mac_address, n.security_group_ids)
        for n in batch_only.nics
    ] == [(0, subnets["db-a"], None, None, (web,)), (1, subnets["db-a"], None, None, (web,))]

    # The VM's own target wins field by field; what it leaves out still comes from the batch.
    assert (overridden.name, overridden.node_id) == ("db-restored", "node-a1@10.10.0.11")
    assert (overridden.instance_type, overridden.cpu, overridden.memory_mib) == ("m1.large", 2, 3072)
    assert [(d.source.volume_id, d.name, d.storage_id, d.device_name) for d in overridden.disks] == [
        (
            d.volume_id,
            "db-data1-new" if d is data1 else d.name,
            "sto-a-ceph" if d is data1 else "sto-a-local",
            d.device_name,
        )
        for d in disk_vm.disks
    ]
    [nic] = overridden.nics
    assert (nic.subnet_id, nic.private_ip_address, nic.mac_address, nic.security_group_ids) == (
        subnets["web-a"],
        "10.10.1.200",
        "02:00:00:00:00:aa",
        (default,),
    )
    assert plan.to_restore == [batch_only, overridden]


def test_batch_disk_name_renames_every_disk_of_every_vm_and_a_disks_own_name_wins(
    cloud_client: BingoCloudClient,
) -> None:
    nic_vm, disk_vm = backed_up(cloud_client, "linux_mul_nic"), backed_up(cloud_client, "linux_mul_disk")
    data2 = disk_vm.disks[2]
    the_spec = spec(
        vms=[
            {"source": {"vm": nic_vm.name}, "target": {"nics": AUTO}},
            {
                "source": {"vm": disk_vm.name},
                "target": {"disks": [{"volume": data2.volume_id, "name": "mine"}]},
            },
        ],
        batch={"name_prefix": "dr-", "disk_name": "{vm}-{n}-{disk}", "ip": "auto", "mac": "auto"},
    )
    plan = plan_restore(cloud_client, the_spec, [nic_vm, disk_vm], "cc01")
    names = {vm.name: [d.name for d in vm.disks] for vm in plan.vms}
    # {disk} is the backed-up disk's name: the cloud's "<vm>-root" style or the data disk's own.
    assert all(d.name for d in nic_vm.disks + disk_vm.disks)
    assert names == {
        "dr-linux_mul_nic": [f"dr-linux_mul_nic-0-{nic_vm.disks[0].name}"],
        "dr-linux_mul_disk": [
            f"dr-linux_mul_disk-0-{disk_vm.disks[0].name}",
            "dr-linux_mul_disk-1-linux_mul_disk-data1",
            "mine",
        ],
    }

    # A disk restore names the new volumes by the same rule, with the backed-up VM's name as {vm}.
    disk_spec = spec(
        kind="disk",
        source={"vm": disk_vm.name},
        target={"disks": [{"volume": disk_vm.disks[1].volume_id}]},
        batch={"disk_name": "restored-{disk}"},
    )
    [disk_plan] = plan_restore(cloud_client, disk_spec, [disk_vm], "cc01").vms
    assert [d.name for d in disk_plan.disks] == ["restored-linux_mul_disk-data1"]


def test_a_lost_vms_ip_and_mac_are_kept(cloud_client: BingoCloudClient) -> None:
    vm = backed_up(cloud_client)
    # The VM is gone (the reason to restore it), so its addresses are free again.
    cloud_client.terminate_instances([vm.vm_id])
    wait_for_instance(cloud_client, vm.vm_id, "terminated", timeout=30)
    plan = plan_restore(cloud_client, spec(), [vm], vm.cluster_id)
    [one] = plan.vms
    assert one.name == vm.name, "the name is free again too"
    assert [(n.subnet_id, n.private_ip_address, n.mac_address) for n in one.nics] == [
        (n.subnet_id, n.private_ip_address, n.mac_address.lower()) for n in vm.nics
    ]
    assert all(n.private_ip_address and n.mac_address for n in one.nics)


def test_an_explicit_mac_is_used_and_one_in_use_is_refused(cloud_client: BingoCloudClient) -> None:
    vm = backed_up(cloud_client)
    nics = [{"index": 0, "ip": "auto", "mac": "52:54:00:12:34:56"}, {"index": 1, "ip": "auto", "mac": "auto"}]
    [one] = plan_restore(cloud_client, spec(target={"nics": nics}), [vm], vm.cluster_id).vms
    assert [n.mac_address for n in one.nics] == ["52:54:00:12:34:56", None]
    taken = next(i for i in cloud_client.describe_instances() if i.name == "linux_local")
    used = taken.network_interfaces[0].mac_address
    nics[0]["mac"] = used
    with pytest.raises(RestorePlanError, match=rf"the MAC {used.lower()} is in use by VM {taken.name}"):
        plan_restore(cloud_client, spec(target={"nics": nics}), [vm], vm.cluster_id)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({"instance_type": "m1.xlarge"}, ("m1.xlarge", None, None)),
        ({"instance_type": "m1.small", "memory_mib": 1536}, ("m1.small", "kept", 1536)),
        ({"cpu": 8}, ("kept", 8, "kept")),
    ],
    ids=["type-alone", "type-with-memory", "cpu-alone"],
)
def test_instance_type_or_explicit_cpu_and_memory(
    cloud_client: BingoCloudClient, target: dict[str, object], expected: tuple[object, ...]
) -> None:
    vm = backed_up(cloud_client)
    kept = (vm.instance_type, vm.cpu, vm.memory_mib)
    [one] = plan_restore(cloud_client, spec(target={"nics": AUTO, **target}), [vm], vm.cluster_id).vms
    want = tuple(k if e == "kept" else e for e, k in zip(expected, kept, strict=True))
    assert (one.instance_type, one.cpu, one.memory_mib) == want
