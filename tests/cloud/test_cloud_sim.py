"""The client against the simulated BingoCloud over real HTTP (the contract of docs/cloud-api.md)."""

from __future__ import annotations

import hashlib
import logging
import string
from pathlib import Path
from typing import Any

import pytest
from support.sim_admin import set_faults
from support.testkeys import ACCESS_KEY, SECRET_KEY

from bingobackup.cloud import (
    BingoCloudClient,
    CloudAuthError,
    CloudNotFoundError,
    CloudRetryableError,
    CloudUnreachableError,
    wait_for_snapshot,
    wait_for_volume,
)
from bingobackup.cloud.models import Instance

HASHED_PREFIX = 64 << 20  # enough to cover partition tables and file systems of the demo disks


def prefix_digest(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        remaining = min(size, HASHED_PREFIX)
        while remaining:
            block = f.read(min(remaining, 1 << 20))
            assert block, f"{path} is shorter than {size} bytes"
            digest.update(block)
            remaining -= len(block)
    return digest.hexdigest()


def backup_hosts(instances: list[Instance], cluster_names: dict[str, str]) -> dict[str, Instance]:
    """cluster id → the demo's `backup-host-<cluster name>` VM."""
    by_name = {vm.name: vm for vm in instances}
    return {cid: by_name[f"backup-host-{name}"] for cid, name in cluster_names.items()}


def test_demo_inventory_is_described(cloud_client: BingoCloudClient) -> None:
    clusters = list(cloud_client.describe_clusters())
    nodes = list(cloud_client.describe_nodes())
    storages = list(cloud_client.describe_storages())
    instances = list(cloud_client.describe_instances())
    volumes = {v.volume_id: v for v in cloud_client.describe_volumes()}

    names = {c.cluster_id: c.name for c in clusters}
    assert len(clusters) == 2
    assert len(nodes) >= 4 and all("@" in n.node_id and n.cluster_id in names for n in nodes)
    for cluster_id in names:
        in_cluster = list(cloud_client.describe_nodes(cluster_id=cluster_id))
        assert in_cluster and {n.cluster_id for n in in_cluster} == {cluster_id}
        assert {s.cluster_id for s in cloud_client.describe_storages(cluster_id=cluster_id)} == {cluster_id}
    assert len(storages) >= 2 and all(s.space_max_bytes > 0 for s in storages)
    hosts = backup_hosts(instances, names)
    assert all(host.cluster_id == cid for cid, host in hosts.items())
    assert len([vm for vm in instances if not vm.name.startswith("backup-host-")]) >= 6
    node_ids = {n.node_id for n in nodes}
    for vm in instances:
        assert vm.node_id in node_ids, f"{vm.name} runs on an unknown node {vm.node_id}"
        roots = [volumes[b.volume_id] for b in vm.block_devices if b.device_name == vm.root_device_name]
        assert len(roots) == 1 and roots[0].is_root, f"{vm.name} has no root volume"


def test_wrong_secret_is_an_auth_error_without_the_secret(sim: Any) -> None:
    wrong = "sk-wrong-secret-value-123"
    client = BingoCloudClient(sim.endpoint, ACCESS_KEY, wrong, retry_window_seconds=5)

    with pytest.raises(CloudAuthError) as caught:
        list(client.describe_clusters())

    assert caught.value.code == "SignatureDoesNotMatch"
    assert "bingobackup cloud settings" in str(caught.value)
    for secret in (wrong, SECRET_KEY):
        assert secret not in str(caught.value) and secret not in repr(caught.value)


def test_unknown_volume_is_not_found(cloud_client: BingoCloudClient) -> None:
    with pytest.raises(CloudNotFoundError) as caught:
        cloud_client.get_volume("vol-DOESNOTEXIST")

    assert caught.value.code == "InvalidVolume.NotFound"
    assert "vol-DOESNOTEXIST" in str(caught.value)


def test_small_pages_return_every_item_once(sim: Any, cloud_client: BingoCloudClient) -> None:
    paged = BingoCloudClient(sim.endpoint, ACCESS_KEY, SECRET_KEY, page_size=2)

    small_instances = [vm.instance_id for vm in paged.describe_instances()]
    small_volumes = [v.volume_id for v in paged.describe_volumes()]

    assert len(small_instances) >= 8 and len(set(small_instances)) == len(small_instances)
    assert sorted(small_instances) == sorted(vm.instance_id for vm in cloud_client.describe_instances())
    assert sorted(small_volumes) == sorted(v.volume_id for v in cloud_client.describe_volumes())
    assert len(set(small_volumes)) == len(small_volumes)


def test_snapshot_to_volume_attached_to_the_backup_host(sim: Any, cloud_client: BingoCloudClient) -> None:
    names = {c.cluster_id: c.name for c in cloud_client.describe_clusters()}
    instances = list(cloud_client.describe_instances())
    host = next(iter(backup_hosts(instances, names).values()))
    source_vm = next(
        vm for vm in instances if vm.cluster_id == host.cluster_id and vm.instance_id != host.instance_id
    )
    (source_id,) = [
        b.volume_id for b in source_vm.block_devices if b.device_name == source_vm.root_device_name
    ]
    source = cloud_client.get_volume(source_id)

    snap = cloud_client.create_snapshot(source_id, "client test")
    snap = wait_for_snapshot(cloud_client, snap.snapshot_id, timeout=30)
    copy = cloud_client.create_volume(snapshot_id=snap.snapshot_id, storage_id=source.storage_id, name="copy")
    copy = wait_for_volume(cloud_client, copy.volume_id, "available", timeout=30)
    used = {b.device_name for b in host.block_devices}
    device = next(
        f"/dev/vd{letter}" for letter in string.ascii_lowercase[1:] if f"/dev/vd{letter}" not in used
    )

    attachment = cloud_client.attach_volume(copy.volume_id, host.instance_id, device)
    attached = wait_for_volume(cloud_client, copy.volume_id, "in-use", timeout=30)
    guest_device = sim.state_dir / "hosts" / host.instance_id / "dev/disk/by-id" / f"virtio-{attached.serial}"

    assert attachment.instance_id == host.instance_id
    assert [a.instance_id for a in attached.attachments] == [host.instance_id]
    assert guest_device.exists(), f"{guest_device} did not appear after attach"
    assert copy.size_bytes == source.size_bytes == snap.volume_size_bytes
    source_raw = sim.state_dir / "volumes" / f"{source_id}.raw"
    assert prefix_digest(guest_device, source.size_bytes) == prefix_digest(source_raw, source.size_bytes)

    cloud_client.detach_volume(copy.volume_id, host.instance_id)
    wait_for_volume(cloud_client, copy.volume_id, "available", timeout=30)
    assert not guest_device.exists(), "the device stayed after detach"
    cloud_client.delete_volume(copy.volume_id)
    cloud_client.delete_snapshot(snap.snapshot_id)
    with pytest.raises(CloudNotFoundError):
        cloud_client.get_volume(copy.volume_id)


def test_injected_throttling_is_ridden_out(sim: Any, caplog: pytest.LogCaptureFixture) -> None:
    set_faults(sim, {"throttle_rate": 0.5, "seed": 7, "actions": ["DescribeClusters"]})
    # The production window: the seeded faults throttle five calls in a row at one point, and
    # the shared fixture's 5 s window could run out there on an unlucky draw of the jitter.
    client = BingoCloudClient(sim.endpoint, ACCESS_KEY, SECRET_KEY)
    assert client.retry_window_seconds == 60

    with caplog.at_level(logging.WARNING, logger="bingobackup.cloud"):
        results = [len(list(client.describe_clusters())) for _ in range(10)]

    assert results == [2] * 10
    assert any("RequestLimitExceeded" in r.getMessage() for r in caplog.records)
    assert SECRET_KEY not in caplog.text


def test_persistent_faults_fail_clearly_after_the_window(sim: Any) -> None:
    client = BingoCloudClient(sim.endpoint, ACCESS_KEY, SECRET_KEY, retry_window_seconds=1.0)

    set_faults(sim, {"error_rate": {"*": 1.0}})
    with pytest.raises(CloudRetryableError) as failing:
        list(client.describe_volumes())
    set_faults(sim, {"drop_rate": 1.0})
    with pytest.raises(CloudUnreachableError) as dropping:
        list(client.describe_volumes())
    set_faults(sim, None)

    assert failing.value.code == "InternalError" and failing.value.attempts > 1
    assert f"gave up after {failing.value.attempts} attempts" in str(failing.value)
    assert dropping.value.attempts > 1 and sim.endpoint.rstrip("/") in str(dropping.value)
    assert len(list(client.describe_clusters())) == 2, "the client works again once faults are cleared"
