"""Restore flow cases the first tests left out: a target cluster with no activated backup host
is refused before anything exists; a damaged chunk fails its VM naming VM, disk and offset and
leaves no volume behind; a VM chosen by its instance id comes back byte-identical with the
holes of its disks kept as holes."""

from __future__ import annotations

from pathlib import Path

import pytest
from flow_support import POOL_PASSPHRASE, Registered
from pool_files import damage_chunk
from restore_support import MIB, BackedUp, back_up, sha256

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.errors import BingoBackupError
from bingobackup.pools import open_pool
from bingobackup.resources.hosts import deactivate_backup_host
from bingobackup.resources.users import LOCAL_ADMIN
from bingobackup.restore.verification import verification_code
from bingobackup.sparse import allocated_bytes, data_extents
from bingobackup.specs.restore import load_restore_spec
from flows.restore import restore_vm
from tasks.blocks import PrefectRegistryStore

AUTO_NICS = [{"index": 0, "ip": "auto", "mac": "auto"}, {"index": 1, "ip": "auto", "mac": "auto"}]


@pytest.fixture
def backed_up(registered: Registered, tmp_path: Path) -> BackedUp:
    return back_up(registered, tmp_path)


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
