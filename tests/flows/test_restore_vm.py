"""VM restore for real (local Prefect server, simulated BingoCloud over HTTP): the new VM has
exactly the asked configuration, its disks are byte-identical to the backed-up ones, it runs;
same-name policies, power-off, cross-cluster restore, and refusals before anything exists.

Also: a target cluster with no activated backup host
is refused before anything exists; a damaged chunk fails its VM naming VM, disk and offset and
leaves no volume behind; a VM chosen by its instance id comes back byte-identical with the
holes of its disks kept as holes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.flow import POOL_PASSPHRASE, Registered
from support.pool_files import damage_chunk
from support.restore import MIB, BackedUp, back_up, sha256

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.waiters import wait_for_instance
from bingobackup.errors import BingoBackupError
from bingobackup.pools import open_pool
from bingobackup.resources.hosts import deactivate_backup_host
from bingobackup.resources.users import LOCAL_ADMIN
from bingobackup.restore.verification import verification_code
from bingobackup.sparse import allocated_bytes, data_extents
from bingobackup.specs.restore import load_restore_spec
from flows.restore import restore_vm
from tasks.blocks import PrefectRegistryStore


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


def _cloud_ids(client: BingoCloudClient) -> tuple[set[str], set[str]]:
    """Live instances and every volume: what a restore could have created."""
    live = {i.instance_id for i in client.describe_instances() if i.state.name != "terminated"}
    return live, {v.volume_id for v in client.describe_volumes()}


def test_a_target_cluster_with_no_activated_backup_host_is_refused_before_anything_exists(
    registered: Registered,
) -> None:
    # cluster-b loses its only backup host; the restore names cluster-a's host, which may not
    # write into cluster-b. The refusal comes before any backup set is read.
    deactivate_backup_host(PrefectRegistryStore(), LOCAL_ADMIN, registered.hosts["cluster-b"])
    before = _cloud_ids(registered.client)
    spec = load_restore_spec(
        {
            "version": 1,
            "name": "restore-into-b",
            "cloud": registered.cloud,
            "backup_host": registered.hosts["cluster-a"],
            "cluster": "cluster-b",
            "pool": registered.pool,
            "source": {"vm": "linux_local"},
        }
    )
    state = restore_vm(spec=spec, confirm=verification_code(spec), return_state=True)
    assert state.is_failed()
    with pytest.raises(BingoBackupError) as refused:
        state.result()
    message = str(refused.value)
    assert "Restore into cluster cluster-b needs a backup host in that cluster" in message
    assert "it has no activated backup host" in message
    assert "`bingobackup host register` and `bingobackup host activate`" in message
    assert _cloud_ids(registered.client) == before


def test_a_damaged_chunk_fails_its_vm_naming_vm_disk_and_offset_and_leaves_no_volume(
    backed_up: BackedUp,
) -> None:
    registered, client = backed_up.registered, backed_up.registered.client
    manifest = open_pool(registered.pool_dir, POOL_PASSPHRASE).load_manifest(
        backed_up.set_id, backed_up.data_volume
    )
    damaged = manifest.chunks[-1]  # random data: no other chunk shares it
    damage_chunk(registered.pool_dir, damaged, -5)
    before = _cloud_ids(client)

    state, result = backed_up.run(restore_vm, target={"name": "from-damaged", "nics": AUTO_NICS})

    assert state.is_failed()
    [outcome] = result["outcomes"]
    assert outcome["status"] == "failed"
    error = outcome["error"]
    assert backed_up.instance.name in error and backed_up.data_volume in error, error
    assert f"offset {damaged.offset}" in error and damaged.digest in error, error
    assert "No other backup set in the pool holds this chunk." in error  # looked up in the catalog
    assert POOL_PASSPHRASE not in error
    assert _cloud_ids(client) == before, "the failed VM's volumes (and VM) were removed"


def _data_chunks(path: Path, chunk: int) -> set[int]:
    """Indexes of the `chunk`-sized pieces of `path` holding any data extent."""
    return {
        index
        for offset, length in data_extents(path)
        for index in range(offset // chunk, (offset + length - 1) // chunk + 1)
    }


def test_a_vm_chosen_by_id_comes_back_identical_with_its_holes_kept(backed_up: BackedUp) -> None:
    registered, source = backed_up.registered, backed_up.instance
    chunk = open_pool(registered.pool_dir, POOL_PASSPHRASE).chunk_size

    state, result = backed_up.run(
        restore_vm,
        source={"vm": source.instance_id, "set": backed_up.set_id},
        target={"name": "by-id", "nics": AUTO_NICS},
    )

    assert state.is_completed(), state.message
    [outcome] = result["outcomes"]
    new = registered.client.get_instance(outcome["instance_id"])
    assert new.name == "by-id"
    restored = {b.device_name: b.volume_id for b in new.block_devices}
    for device, volume in {"/dev/vda": backed_up.root_volume, "/dev/vdb": backed_up.data_volume}.items():
        original, copy = registered.volume_file(volume), registered.volume_file(restored[device])
        assert sha256(copy) == backed_up.sha[volume]
        # Holes stay holes: data only where the source had data (to the chunk), and the copy
        # allocates a small part of its size (root: 8 MiB of 96, data: 4 MiB of 48).
        assert _data_chunks(copy, chunk) <= _data_chunks(original, chunk), device
        assert allocated_bytes(copy) <= len(_data_chunks(original, chunk)) * chunk + MIB, device
        assert allocated_bytes(copy) < copy.stat().st_size // 4, device
