"""VM restore for real (local Prefect server, simulated BingoCloud over HTTP): the new VM has
exactly the asked configuration, its disks are byte-identical to the backed-up ones, it runs;
same-name policies, power-off, cross-cluster restore, and refusals before anything exists."""

from __future__ import annotations

from pathlib import Path

import pytest
from flow_support import Registered
from restore_support import BackedUp, back_up, sha256

from bingobackup.cloud.waiters import wait_for_instance
from bingobackup.errors import BingoBackupError
from bingobackup.restore.verification import verification_code
from bingobackup.specs.restore import load_restore_spec
from flows.restore import restore_vm


@pytest.fixture
def backed_up(registered: Registered, tmp_path: Path) -> BackedUp:
    return back_up(registered, tmp_path)


def _ids(registered: Registered) -> tuple[set[str], set[str]]:
    client = registered.client
    live = {i.instance_id for i in client.describe_instances() if i.state.name != "terminated"}
    return live, {v.volume_id for v in client.describe_volumes()}


def _subnets(registered: Registered) -> dict[str, str]:
    return {s.name: s.subnet_id for s in registered.client.describe_subnets()}


def _groups(registered: Registered, vpc_id: str) -> dict[str, str]:
    return {g.group_name: g.group_id for g in registered.client.describe_security_groups(vpc_id=vpc_id)}


def test_restore_with_every_field_changed_builds_exactly_that_vm(backed_up: BackedUp) -> None:
    registered, client, source = backed_up.registered, backed_up.registered.client, backed_up.instance
    # The VM is lost (the reason to restore), so its MAC is free to keep.
    client.terminate_instances([source.instance_id])
    wait_for_instance(client, source.instance_id, "terminated", timeout=30)
    nic0, nic1 = sorted(source.network_interfaces, key=lambda n: n.device_index)
    subnets = _subnets(registered)
    web_group = _groups(registered, nic0.vpc_id)["web"]
    state, result = backed_up.run(
        restore_vm,
        target={
            "name": "web-restored",
            "node": "node-a3@10.10.0.13",
            "cpu": 4,
            "memory_mib": 6144,
            "disks": [
                {"volume": backed_up.root_volume, "name": "web-root", "storage": "sto-a-ceph"},
                {"volume": backed_up.data_volume, "name": "web-data", "storage": "sto-a-ceph"},
            ],
            "nics": [
                {
                    "index": 0,
                    "subnet": subnets["db-a"],
                    "ip": "10.10.2.77",
                    "mac": "keep",
                    "security_group": web_group,
                },
                {"index": 1, "ip": "auto", "mac": "keep", "primary": True},
            ],
        },
    )
    assert state.is_completed(), state.message
    assert result["status"] == "ok"
    [outcome] = result["outcomes"]
    new = client.get_instance(outcome["instance_id"])
    assert (new.name, new.state.name, new.node_id, new.cpu, new.memory_mib, new.cluster_id) == (
        "web-restored",
        "running",
        "node-a3@10.10.0.13",
        4,
        6144,
        "cc01",
    )
    nics = sorted(new.network_interfaces, key=lambda n: n.device_index)
    # The primary NIC (the old NIC 1) is at device index 0.
    assert (nics[0].subnet_id, nics[0].mac_address) == (nic1.subnet_id, nic1.mac_address)
    assert (nics[1].subnet_id, nics[1].private_ip_address, nics[1].mac_address) == (
        subnets["db-a"],
        "10.10.2.77",
        nic0.mac_address,
    )
    assert [g.group_id for g in nics[1].security_groups] == [web_group]
    devices = {b.device_name: client.get_volume(b.volume_id) for b in new.block_devices}
    assert sorted(devices) == ["/dev/vda", "/dev/vdb"]
    root, data = devices["/dev/vda"], devices["/dev/vdb"]
    assert root.storage_id == data.storage_id == "sto-a-ceph"
    assert (root.name, data.name) == ("web-root", "web-data")
    assert sha256(registered.volume_file(root.volume_id)) == backed_up.sha[backed_up.root_volume]
    assert sha256(registered.volume_file(data.volume_id)) == backed_up.sha[backed_up.data_volume]
    # Nothing temporary is left: no snapshot, no image, no extra volume.
    assert not list(client.describe_snapshots())
    assert not [i for i in client.describe_images() if i.name.startswith("bingobackup-restore")]
    assert not [v for v in client.describe_volumes() if v.name == "web-root" and not v.attachments]


AUTO_NICS = [{"index": 0, "ip": "auto", "mac": "auto"}, {"index": 1, "ip": "auto", "mac": "auto"}]


def test_same_name_gets_a_timestamp_suffix_or_is_skipped_and_power_on_off_leaves_it_stopped(
    backed_up: BackedUp,
) -> None:
    client, name = backed_up.registered.client, backed_up.instance.name
    state, result = backed_up.run(restore_vm, target={"nics": AUTO_NICS}, power_on=False)
    assert state.is_completed(), state.message
    new = client.get_instance(result["outcomes"][0]["instance_id"])
    assert new.name.startswith(f"{name}-") and new.name != name
    assert new.state.name == "stopped"
    assert len(new.block_devices) == 2

    live_before, volumes_before = _ids(backed_up.registered)
    state, result = backed_up.run(restore_vm, target={"nics": AUTO_NICS}, same_name="skip")
    assert state.is_completed(), state.message
    [outcome] = result["outcomes"]
    assert outcome["status"] == "skipped" and "exists" in outcome["error"]
    assert _ids(backed_up.registered) == (live_before, volumes_before)


def test_cross_cluster_restore_runs_on_that_clusters_backup_host(backed_up: BackedUp) -> None:
    registered = backed_up.registered
    web_b = _subnets(registered)["web-b"]
    nics = [
        {"index": 0, "subnet": web_b, "ip": "auto", "mac": "auto"},
        {"index": 1, "subnet": web_b, "ip": "auto", "mac": "auto"},
    ]
    state, result = backed_up.run(
        restore_vm,
        backup_host=registered.hosts["cluster-b"],
        cluster="cluster-b",
        target={"name": "web-in-b", "nics": nics},
        options={"parallel_disks_per_vm": 1},
    )
    assert state.is_completed(), state.message
    new = registered.client.get_instance(result["outcomes"][0]["instance_id"])
    assert (new.cluster_id, new.state.name) == ("cc02", "running")
    root = next(b for b in new.block_devices if b.device_name == "/dev/vda")
    assert sha256(registered.volume_file(root.volume_id)) == backed_up.sha[backed_up.root_volume]
    # The disks were written through cluster-b's backup host, one at a time as the job's
    # parallel-disks limit (a Prefect tag limit) asks.
    stats = registered.sim.stats()
    assert stats.max_attached_per_host.get(registered.hosts["cluster-b"], 0) == 1


def test_target_cluster_without_that_backup_host_is_refused_before_anything_exists(
    backed_up: BackedUp,
) -> None:
    before = _ids(backed_up.registered)
    spec = load_restore_spec(backed_up.spec(cluster="cluster-b", target={"nics": AUTO_NICS}))
    state = restore_vm(spec=spec, confirm=verification_code(spec), return_state=True)
    assert state.is_failed()
    with pytest.raises(BingoBackupError, match="needs a backup host in that cluster"):
        state.result()
    assert _ids(backed_up.registered) == before
