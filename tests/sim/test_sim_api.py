"""The simulated BingoCloud over raw HTTP: it checks every request like the real API, keeps
its state across restarts, snapshots sparse volumes without copying holes, and exposes
attached volumes as devices on the backup host."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sim_support import ACCESS_KEY, SECRET_KEY, admin, call, ok, post, sha256, wait_until

from bingobackup.cloud import signing
from bingobackup.sim.server import RunningSimulator, start_simulator
from bingobackup.sparse import allocated_bytes

GIB = 1 << 30


def volume_status(sim: RunningSimulator, volume_id: str) -> str:
    return ok(sim.endpoint, "DescribeVolumes", {"VolumeId.1": volume_id}).text("volumeSet/item/status")


def snapshot_status(sim: RunningSimulator, snapshot_id: str) -> str:
    return ok(sim.endpoint, "DescribeSnapshots", {"SnapshotId.1": snapshot_id}).text(
        "snapshotSet/item/status"
    )


def test_a_signed_request_is_answered_in_ec2_shape(demo: RunningSimulator) -> None:
    reply = ok(demo.endpoint, "DescribeClusters")
    assert reply.root.tag == "DescribeClustersResponse"
    assert reply.text("requestId")
    names = {item.findtext("clusterName") for item in reply.items("clusterSet")}
    assert names == {"cluster-a", "cluster-b"}


@pytest.mark.parametrize(
    ("mutate", "status", "code"),
    [
        (lambda p: {**p, "Signature": "AAAA" + p["Signature"][4:]}, 403, "SignatureDoesNotMatch"),
        (lambda p: {**p, "AWSAccessKeyId": "AKUNKNOWN"}, 401, "AuthFailure"),
    ],
)
def test_bad_signature_and_unknown_key_are_refused(
    demo: RunningSimulator, mutate, status: int, code: str
) -> None:
    host = demo.endpoint.split("//")[1].rstrip("/")
    params = signing.signed_params("DescribeInstances", {}, ACCESS_KEY, SECRET_KEY, host)
    reply = post(demo.endpoint, mutate(params))
    assert (reply.status, reply.code) == (status, code)
    assert SECRET_KEY not in reply.body.decode()


def test_wrong_secret_is_signature_mismatch(demo: RunningSimulator) -> None:
    reply = call(demo.endpoint, "DescribeVolumes", secret_key="not-the-secret")
    assert (reply.status, reply.code) == (403, "SignatureDoesNotMatch")


def test_unknown_action_missing_parameter_unknown_id(demo: RunningSimulator) -> None:
    reply = call(demo.endpoint, "FormatAllDisks")
    assert (reply.status, reply.code) == (400, "InvalidAction")
    reply = call(demo.endpoint, "CreateSnapshot")
    assert (reply.status, reply.code) == (400, "MissingParameter")
    assert "VolumeId" in reply.message
    reply = call(demo.endpoint, "DeleteVolume", {"VolumeId": "vol-NOPE"})
    assert (reply.status, reply.code) == (400, "InvalidVolume.NotFound")
    assert "vol-NOPE" in reply.message


def test_sparse_snapshot_copies_no_holes_and_state_survives_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    sim = start_simulator(state, ACCESS_KEY, SECRET_KEY, scenario="demo", transition_delay=0.05)
    try:
        storage = ok(sim.endpoint, "DescribeStorages").items("storageSet")[0].findtext("storageId")
        volume_id = ok(
            sim.endpoint, "CreateVolume", {"SizeBytes": str(2 * GIB), "StorageId": storage or ""}
        ).text("volumeId")
        wait_until(lambda: volume_status(sim, volume_id) == "available", what="the new volume")
        path = state / "volumes" / f"{volume_id}.raw"
        with path.open("r+b") as f:  # 4 MiB of data in the middle of 2 GiB of holes
            f.seek(GIB + 12345)
            f.write(os.urandom(4 << 20))
        snapshot_id = ok(sim.endpoint, "CreateSnapshot", {"VolumeId": volume_id}).text("snapshotId")
        wait_until(lambda: snapshot_status(sim, snapshot_id) == "completed", what="the snapshot")
        snap_file = state / "snapshots" / f"{snapshot_id}.raw"
        assert snap_file.stat().st_size == 2 * GIB
        assert allocated_bytes(snap_file) < 16 << 20  # the holes were not copied
        assert sha256(snap_file) == sha256(path)
    finally:
        sim.stop()

    again = start_simulator(state, ACCESS_KEY, SECRET_KEY, scenario="demo", transition_delay=0.05)
    try:
        assert volume_status(again, volume_id) == "available"
        assert snapshot_status(again, snapshot_id) == "completed"
        assert sha256(state / "volumes" / f"{volume_id}.raw") == sha256(snap_file)
    finally:
        again.stop()


def test_attach_exposes_the_device_by_virtio_serial_and_detach_removes_it(demo: RunningSimulator) -> None:
    instances = ok(demo.endpoint, "DescribeInstances").root.iter("instancesSet")
    host = next(
        item.findtext("instanceId")
        for group in instances
        for item in group.findall("item")
        if item.findtext("instanceName") == "backup-host-cluster-a"
    )
    volume_id = ok(demo.endpoint, "CreateVolume", {"SizeBytes": str(64 << 20)}).text("volumeId")
    wait_until(lambda: volume_status(demo, volume_id) == "available", what="the new volume")
    ok(demo.endpoint, "AttachVolume", {"VolumeId": volume_id, "InstanceId": host or "", "Device": "/dev/vdz"})
    serial = ok(demo.endpoint, "DescribeVolumes", {"VolumeId.1": volume_id}).text("volumeSet/item/serial")
    device = demo.state_dir / "hosts" / str(host) / "dev" / "disk" / "by-id" / f"virtio-{serial[:20]}"
    wait_until(device.exists, what="the device link")
    assert sha256(device) == sha256(demo.state_dir / "volumes" / f"{volume_id}.raw")
    ok(demo.endpoint, "DetachVolume", {"VolumeId": volume_id})
    wait_until(lambda: not device.exists() and volume_status(demo, volume_id) == "available", what="detach")


def test_faults_switch_on_and_off_at_run_time(demo: RunningSimulator) -> None:
    status, _ = admin(f"{demo.admin_url}/faults", "PUT", {"throttle_rate": 1.0, "actions": ["DescribeNodes"]})
    assert status == 200
    reply = call(demo.endpoint, "DescribeNodes")
    assert (reply.status, reply.code) == (503, "RequestLimitExceeded")
    assert call(demo.endpoint, "DescribeClusters").status == 200  # other actions untouched
    admin(f"{demo.admin_url}/faults", "DELETE")
    assert call(demo.endpoint, "DescribeNodes").status == 200
