"""Discovery on the demo scenario: tree, search, wildcard filters, disk selection, live resolution."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydantic import ValidationError

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.waiters import wait_for_volume
from bingobackup.resources.discovery import (
    CloudTree,
    ContentSelection,
    SelectionFilters,
    by_storage,
    filter_vms,
    resolve_selection,
    search_vms,
)
from bingobackup.resources.errors import SelectionError, UnknownSelection

if TYPE_CHECKING:
    from bingobackup.sim.server import RunningSimulator

BACKUP_HOSTS = {"backup-host-cluster-a", "backup-host-cluster-b"}


@pytest.fixture
def tree(cloud_client: BingoCloudClient) -> CloudTree:
    return CloudTree.from_client(cloud_client)


@pytest.fixture
def backup_host_ids(tree: CloudTree) -> set[str]:
    return {vm.instance_id for vm in tree.iter_vms() if vm.name in BACKUP_HOSTS}


def _names(vms: object) -> set[str]:
    return {vm.name for vm in vms}  # type: ignore[attr-defined]


def test_tree_has_clusters_nodes_vms_and_disks(tree: CloudTree, cloud_client: BingoCloudClient) -> None:
    assert [c.cluster.name for c in tree.clusters] == ["cluster-a", "cluster-b"]
    assert sum(1 for _ in tree.iter_nodes()) >= 4
    for cluster in tree.clusters:
        names = _names(cluster.iter_vms())
        assert f"backup-host-{cluster.cluster.name}" in names
        for node in cluster.nodes:
            assert node.node.cluster_id == cluster.cluster.cluster_id
            for vm in node.vms:
                assert vm.node_id == node.node.node_id and vm.cluster_id == cluster.cluster.cluster_id
                # Exactly one system disk, listed first.
                assert [d.system for d in vm.disks] == [True] + [False] * (len(vm.disks) - 1)
    everything = {i.instance_id for i in cloud_client.describe_instances() if i.state.name != "terminated"}
    assert {vm.instance_id for vm in tree.iter_vms()} == everything
    multi = tree.find_vm("linux_mul_disk")
    assert len(multi.disks) == 3
    assert multi.size_bytes == sum(cloud_client.get_volume(d.volume_id).size_bytes for d in multi.disks)
    assert tree.find_vm(multi.instance_id) == multi


def test_storage_view_lists_each_storage_with_the_vm_disks_on_it(cloud_client: BingoCloudClient) -> None:
    """linux_local's system disk is on local-a; a data disk added on ceph-a puts it under both."""
    vm = CloudTree.from_client(cloud_client).find_vm("linux_local")
    data = cloud_client.create_volume(size_bytes=64 << 20, storage_id="sto-a-ceph", name="linux_local-data")
    wait_for_volume(cloud_client, data.volume_id, "available", timeout=30)
    cloud_client.attach_volume(data.volume_id, vm.instance_id, "/dev/vdb")
    wait_for_volume(cloud_client, data.volume_id, "in-use", timeout=30)
    tree = CloudTree.from_client(cloud_client)

    view = {e.storage.storage_id: e for e in by_storage(tree, cloud_client.describe_storages())}
    assert list(view) == ["sto-a-ceph", "sto-a-local", "sto-b-local"]  # cluster, then storage name
    disks_on = {
        sid: {vm.name: [d.volume_id for d in vm.disks] for vm in entry.vms} for sid, entry in view.items()
    }
    local_vm = tree.find_vm("linux_local")
    assert disks_on["sto-a-local"]["linux_local"] == [local_vm.disks[0].volume_id]
    assert disks_on["sto-a-ceph"]["linux_local"] == [data.volume_id]
    assert disks_on["sto-a-ceph"]["linux_mul_disk"] == [
        d.volume_id for d in tree.find_vm("linux_mul_disk").disks
    ]
    assert {"web-b-01", "db-b-01", "debian-tools"} <= set(disks_on["sto-b-local"])
    # Every disk of every VM is under exactly its own storage, once.
    listed = sorted((d.volume_id, sid) for sid, entry in view.items() for vm in entry.vms for d in vm.disks)
    assert listed == sorted((d.volume_id, d.storage_id) for vm in tree.iter_vms() for d in vm.disks)
    assert view["sto-a-ceph"].storage.space_max_bytes == 8 << 40


def test_keyword_search_is_case_insensitive(tree: CloudTree) -> None:
    found = _names(search_vms(tree, "LINUX_"))
    assert {"linux_local", "linux_mul_disk", "linux_mul_nic"} <= found
    assert all("linux_" in name for name in found)
    assert _names(search_vms(tree, "no-such-vm")) == set()
    assert len(search_vms(tree, "")) == sum(1 for _ in tree.iter_vms())


def test_wildcard_filters_exclude_wins(tree: CloudTree) -> None:
    vms = list(tree.iter_vms())
    only_linux = SelectionFilters(include=["LINUX_*"], exclude=["*_nic"])
    assert _names(filter_vms(vms, only_linux)) == {vm.name for vm in vms if vm.name.startswith("linux_")} - {
        "linux_mul_nic"
    }
    no_windows = SelectionFilters(exclude=["win*"])
    assert "win2019-ad" not in _names(filter_vms(vms, no_windows))
    assert "linux_local" in _names(filter_vms(vms, no_windows))
    assert SelectionFilters(include=[]).matches("anything")


def test_cluster_selection_skips_backup_hosts_and_applies_filters(
    cloud_client: BingoCloudClient, tree: CloudTree, backup_host_ids: set[str]
) -> None:
    resolved = resolve_selection(
        cloud_client,
        [ContentSelection(cluster="cluster-a")],
        SelectionFilters(exclude=["win*"]),
        backup_host_ids=backup_host_ids,
    )
    expected = {
        vm.name for vm in tree.find_cluster("cluster-a").iter_vms() if vm.instance_id not in backup_host_ids
    } - {"win2019-ad"}
    assert {vm.name for vm in resolved} == expected and expected
    assert not BACKUP_HOSTS & {vm.name for vm in resolved}
    for vm in resolved:
        assert vm.disks == tree.find_vm(vm.instance_id).disks  # default: all disks


def test_disk_selection_system_all_or_listed(
    cloud_client: BingoCloudClient, tree: CloudTree, backup_host_ids: set[str]
) -> None:
    multi = tree.find_vm("linux_mul_disk")
    system, first_data, second_data = multi.disks

    def disks_for(entry: ContentSelection) -> list[str]:
        (vm,) = resolve_selection(cloud_client, [entry], backup_host_ids=backup_host_ids)
        return [d.volume_id for d in vm.disks]

    assert disks_for(ContentSelection(vm="linux_mul_disk", disks="system")) == [system.volume_id]
    assert disks_for(ContentSelection(vm="linux_mul_disk", disks="all")) == [d.volume_id for d in multi.disks]
    assert disks_for(ContentSelection(vm=multi.instance_id, disks=[second_data.volume_id])) == [
        second_data.volume_id
    ]
    with pytest.raises(
        UnknownSelection,
        match=f"Volume 'vol-NOPE' is not a disk of VM 'linux_mul_disk'.*{first_data.volume_id}",
    ):
        disks_for(ContentSelection(vm="linux_mul_disk", disks=["vol-NOPE"]))


def test_explicit_vm_entry_overrides_its_cluster_entry(
    cloud_client: BingoCloudClient, tree: CloudTree, backup_host_ids: set[str]
) -> None:
    multi = tree.find_vm("linux_mul_disk")
    cluster_name = next(c.cluster.name for c in tree.clusters if c.cluster.cluster_id == multi.cluster_id)
    resolved = resolve_selection(
        cloud_client,
        [ContentSelection(cluster=cluster_name), ContentSelection(vm="linux_mul_disk", disks="system")],
        SelectionFilters(exclude=["linux_mul_disk"]),  # an explicitly named VM is still taken
        backup_host_ids=backup_host_ids,
    )
    by_name = {vm.name: vm for vm in resolved}
    assert [d.system for d in by_name["linux_mul_disk"].disks] == [True]
    assert len(by_name) > 1


def test_unknown_names_are_reported_with_close_matches(
    cloud_client: BingoCloudClient, backup_host_ids: set[str]
) -> None:
    with pytest.raises(UnknownSelection, match=r"No cluster named 'cluster-c'\. Did you mean .*'cluster-a'"):
        resolve_selection(
            cloud_client, [ContentSelection(cluster="cluster-c")], backup_host_ids=backup_host_ids
        )
    with pytest.raises(UnknownSelection, match=r"No VM named 'linux_locl'\. Did you mean 'linux_local'"):
        resolve_selection(cloud_client, [ContentSelection(vm="linux_locl")], backup_host_ids=backup_host_ids)
    with pytest.raises(UnknownSelection, match="No node named 'node-zz'"):
        resolve_selection(cloud_client, [ContentSelection(node="node-zz")], backup_host_ids=backup_host_ids)


def test_a_backup_host_named_explicitly_is_refused(
    cloud_client: BingoCloudClient, backup_host_ids: set[str]
) -> None:
    with pytest.raises(SelectionError, match="is a backup host and cannot be backed up"):
        resolve_selection(
            cloud_client, [ContentSelection(vm="backup-host-cluster-a")], backup_host_ids=backup_host_ids
        )


def test_content_entry_validation_names_the_problem() -> None:
    with pytest.raises(ValidationError, match="exactly one of cluster, node or vm"):
        ContentSelection(cluster="cluster-a", vm="linux_local")
    with pytest.raises(ValidationError, match="only applies to a 'vm' entry"):
        ContentSelection(cluster="cluster-a", disks=["vol-1"])
    assert ContentSelection.model_validate({"vm": "linux_local", "disks": "system"}).disks == "system"


def test_node_selection_takes_the_vms_on_that_node(
    cloud_client: BingoCloudClient, tree: CloudTree, backup_host_ids: set[str]
) -> None:
    local = tree.find_vm("linux_local")
    node_name = local.node_id.split("@", 1)[0]
    resolved = resolve_selection(
        cloud_client, [ContentSelection(node=node_name)], backup_host_ids=backup_host_ids
    )
    assert "linux_local" in {vm.name for vm in resolved}
    assert {vm.node_id for vm in resolved} == {local.node_id}


def test_cluster_selection_picks_up_a_vm_created_later(
    sim: RunningSimulator, cloud_client: BingoCloudClient, backup_host_ids: set[str], tmp_path: Path
) -> None:
    selection = [ContentSelection(cluster="cluster-b")]
    before = resolve_selection(cloud_client, selection, backup_host_ids=backup_host_ids)
    assert "late-vm" not in {vm.name for vm in before}

    image = tmp_path / "late.raw"
    with image.open("wb") as f:
        f.write(b"boot" * 1024)
        f.truncate(8 << 20)
    request = urllib.request.Request(
        f"{sim.admin_url}/vms",
        data=json.dumps({"name": "late-vm", "cluster": "cluster-b", "disks": [str(image)]}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status in (200, 201)

    after = resolve_selection(cloud_client, selection, backup_host_ids=backup_host_ids)
    late = [vm for vm in after if vm.name == "late-vm"]
    assert len(late) == 1 and [d.size_bytes for d in late[0].disks] == [8 << 20]
    assert {vm.instance_id for vm in before} < {vm.instance_id for vm in after}
