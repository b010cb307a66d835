"""Volumes, snapshots, attachments and instances go through their states; state survives a restart."""

from __future__ import annotations

import os
from pathlib import Path

from support.sim import (
    ACCESS_KEY,
    SECRET_KEY,
    admin,
    call,
    instance_ids_by_name,
    ok,
    snapshot_status,
    sparse_digest,
    volume_status,
    wait_until,
    write_sparse_image,
)

from bingobackup.sim.server import RunningSimulator, start_simulator
from bingobackup.sparse import allocated_bytes

MIB = 1 << 20
GIB = 1 << 30


def _root_volume(endpoint: str, instance_id: str) -> str:
    reply = ok(
        endpoint,
        "DescribeVolumes",
        {"Filter.1.Name": "attachment.instance-id", "Filter.1.Value.1": instance_id},
    )
    return next(
        i.findtext("volumeId") or "" for i in reply.items("volumeSet") if i.findtext("isRoot") == "true"
    )


def _snapshot(endpoint: str, volume_id: str) -> str:
    snap = ok(endpoint, "CreateSnapshot", {"VolumeId": volume_id, "Description": "test"}).text("snapshotId")
    wait_until(lambda: snapshot_status(endpoint, snap) == "completed", what=f"{snap} completed")
    return snap


def test_state_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = start_simulator(state, ACCESS_KEY, SECRET_KEY, scenario="demo", transition_delay=0.05)
    try:
        source = _root_volume(first.endpoint, instance_ids_by_name(first.endpoint)["linux_local"])
        snap = _snapshot(first.endpoint, source)
        copy = ok(first.endpoint, "CreateVolume", {"SnapshotId": snap, "VolumeName": "kept"}).text("volumeId")
        wait_until(lambda: volume_status(first.endpoint, copy) == "available", what="volume available")
        digest = sparse_digest(state / "volumes" / f"{copy}.raw")
    finally:
        first.stop()

    second = start_simulator(state, ACCESS_KEY, SECRET_KEY, scenario="demo", transition_delay=0.05)
    try:
        volume = ok(second.endpoint, "DescribeVolumes", {"VolumeId.1": copy}).items("volumeSet")[0]
        assert (volume.findtext("volumeName"), volume.findtext("status")) == ("kept", "available")
        assert snapshot_status(second.endpoint, snap) == "completed"
        assert sparse_digest(state / "volumes" / f"{copy}.raw") == digest
        assert sparse_digest(state / "snapshots" / f"{snap}.raw") == sparse_digest(
            state / "volumes" / f"{source}.raw"
        )
        assert len(instance_ids_by_name(second.endpoint)) == 11, "the scenario was not created twice"
    finally:
        second.stop()


def test_snapshot_of_a_large_sparse_volume_keeps_its_bytes_and_holes(
    empty: RunningSimulator, tmp_path: Path
) -> None:
    image = write_sparse_image(
        tmp_path / "big.raw", 8 * GIB, {0: os.urandom(2 * MIB), 6 * GIB: os.urandom(2 * MIB)}
    )
    status, _ = admin(
        f"{empty.admin_url}/vms", "POST", {"name": "big", "cluster": "cluster-a", "disks": [str(image)]}
    )
    assert status == 201
    volume = _root_volume(empty.endpoint, instance_ids_by_name(empty.endpoint)["big"])

    snap = _snapshot(empty.endpoint, volume)

    snap_file = empty.state_dir / "snapshots" / f"{snap}.raw"
    assert snap_file.stat().st_size == 8 * GIB
    assert allocated_bytes(snap_file) < 8 * MIB
    assert sparse_digest(snap_file) == sparse_digest(image)


def test_attach_exposes_the_device_and_detach_removes_it(demo: RunningSimulator) -> None:
    names = instance_ids_by_name(demo.endpoint)
    host = names["backup-host-cluster-a"]
    source = _root_volume(demo.endpoint, names["raw_disk_vm"])
    snap = _snapshot(demo.endpoint, source)
    copy = ok(demo.endpoint, "CreateVolume", {"SnapshotId": snap}).text("volumeId")
    wait_until(lambda: volume_status(demo.endpoint, copy) == "available", what="volume available")

    attach = ok(demo.endpoint, "AttachVolume", {"VolumeId": copy, "InstanceId": host, "Device": "/dev/vdb"})
    assert attach.text("status") == "attaching"
    device = demo.state_dir / "hosts" / host / "dev/disk/by-id" / f"virtio-{copy[:20]}"
    wait_until(device.exists, what="device link")
    again = call(demo.endpoint, "AttachVolume", {"VolumeId": copy, "InstanceId": host, "Device": "/dev/vdc"})
    busy = call(demo.endpoint, "DeleteVolume", {"VolumeId": copy})

    assert sparse_digest(device) == sparse_digest(demo.state_dir / "volumes" / f"{source}.raw")
    assert volume_status(demo.endpoint, copy) == "in-use"
    assert (again.code, busy.code) == ("IncorrectState", "VolumeInUse")
    stats = demo.stats()
    assert stats.max_attached_per_host[host] == 1
    assert stats.max_attached_per_source_vm[names["raw_disk_vm"]] == 1

    assert ok(demo.endpoint, "DetachVolume", {"VolumeId": copy}).text("status") == "detaching"
    wait_until(lambda: volume_status(demo.endpoint, copy) == "available", what="detached")
    assert not device.exists() and not device.is_symlink()
    ok(demo.endpoint, "DeleteVolume", {"VolumeId": copy})
    assert not (demo.state_dir / "volumes" / f"{copy}.raw").exists()


def _instance_state(endpoint: str, instance_id: str) -> str:
    reply = ok(endpoint, "DescribeInstances", {"InstanceId.1": instance_id})
    return reply.items("reservationSet")[0].findtext("instancesSet/item/instanceState/name") or ""


def test_stop_start_and_run_instance_from_an_image(demo: RunningSimulator) -> None:
    names = instance_ids_by_name(demo.endpoint)
    vm = names["linux_mul_nic"]
    assert (
        ok(demo.endpoint, "StopInstances", {"InstanceId.1": vm}).text("instancesSet/item/currentState/name")
        == "stopping"
    )
    wait_until(lambda: _instance_state(demo.endpoint, vm) == "stopped", what="stopped")
    ok(demo.endpoint, "StartInstances", {"InstanceId.1": vm})
    wait_until(lambda: _instance_state(demo.endpoint, vm) == "running", what="running")

    snap = _snapshot(demo.endpoint, _root_volume(demo.endpoint, vm))
    image = ok(
        demo.endpoint,
        "RegisterImage",
        {
            "Name": "restored",
            "RootDeviceName": "/dev/vda",
            "BlockDeviceMapping.1.DeviceName": "/dev/vda",
            "BlockDeviceMapping.1.Ebs.SnapshotId": snap,
        },
    ).text("imageId")
    subnet = next(
        s.findtext("subnetId") or ""
        for s in ok(demo.endpoint, "DescribeSubnets").items("subnetSet")
        if s.findtext("subnetName") == "web-a"
    )
    launch = {
        "ImageId": image,
        "MinCount": "1",
        "MaxCount": "1",
        "InstanceName": "restored-vm",
        "Cpu": "3",
        "Memory": "3072",
        "Placement.HostId": "node-a3@10.10.0.13",
        "NetworkInterface.1.DeviceIndex": "0",
        "NetworkInterface.1.SubnetId": subnet,
        "NetworkInterface.1.PrivateIpAddress": "10.10.1.200",
        "NetworkInterface.1.MacAddress": "d0:0d:00:00:00:01",
    }
    outside = call(
        demo.endpoint, "RunInstances", {**launch, "NetworkInterface.1.PrivateIpAddress": "10.99.0.5"}
    )
    item = ok(demo.endpoint, "RunInstances", launch).items("instancesSet")[0]
    reused = call(demo.endpoint, "RunInstances", {**launch, "InstanceName": "twin"})

    assert outside.code == "InvalidParameterValue" and "10.99.0.5" in outside.message
    assert reused.code == "InvalidParameterValue" and "in use" in reused.message
    new_id = item.findtext("instanceId") or ""
    assert (item.findtext("cpu"), item.findtext("memory"), item.findtext("hostAddress")) == (
        "3",
        "3072",
        "node-a3@10.10.0.13",
    )
    assert item.findtext("networkInterfaceSet/item/privateIpAddress") == "10.10.1.200"
    assert item.findtext("networkInterfaceSet/item/macAddress") == "d0:0d:00:00:00:01"
    wait_until(lambda: _instance_state(demo.endpoint, new_id) == "running", what="new VM running")
    root = _root_volume(demo.endpoint, new_id)
    assert sparse_digest(demo.state_dir / "volumes" / f"{root}.raw") == sparse_digest(
        demo.state_dir / "snapshots" / f"{snap}.raw"
    )


def test_storage_space_follows_writes_and_limits_new_volumes(demo: RunningSimulator) -> None:
    def used() -> int:
        reply = ok(demo.endpoint, "DescribeStorages", {"StorageId.1": "sto-b-local"})
        return int(reply.items("storageSet")[0].findtext("spaceUsed") or 0)

    before = used()
    volume = ok(demo.endpoint, "CreateVolume", {"SizeBytes": str(GIB), "StorageId": "sto-b-local"}).text(
        "volumeId"
    )
    demo.write_volume(volume, 0, os.urandom(4 * MIB))
    after_write = used()
    status, _ = admin(f"{demo.admin_url}/storages/sto-b-local", "PUT", {"space_max": after_write + GIB // 2})
    too_big = call(demo.endpoint, "CreateVolume", {"SizeBytes": str(GIB), "StorageId": "sto-b-local"})

    assert after_write - before >= 4 * MIB
    assert status == 200
    assert (too_big.status, too_big.code) == (400, "InsufficientStorageCapacity")
