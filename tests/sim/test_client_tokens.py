"""ClientToken makes create calls idempotent (as in EC2), and the lost-reply fault that needs it."""

from __future__ import annotations

import http.client
from pathlib import Path

import pytest
from support.sim import (
    ACCESS_KEY,
    SECRET_KEY,
    admin,
    call,
    instance_ids_by_name,
    ok,
    snapshot_status,
    volume_status,
    wait_until,
)

from bingobackup.sim.server import RunningSimulator, start_simulator

MIB = 1 << 20


def _storage(endpoint: str) -> str:
    return ok(endpoint, "DescribeStorages").items("storageSet")[0].findtext("storageId") or ""


def _volume_ids_named(endpoint: str, name: str) -> list[str]:
    return [
        v.findtext("volumeId") or ""
        for v in ok(endpoint, "DescribeVolumes").items("volumeSet")
        if v.findtext("volumeName") == name
    ]


def _completed_snapshot(endpoint: str, volume_id: str) -> str:
    snap = ok(endpoint, "CreateSnapshot", {"VolumeId": volume_id}).text("snapshotId")
    wait_until(lambda: snapshot_status(endpoint, snap) == "completed", what=f"{snap} completed")
    return snap


def _image(endpoint: str, name: str) -> str:
    vm = instance_ids_by_name(endpoint)["linux_local"]
    reply = ok(
        endpoint, "DescribeVolumes", {"Filter.1.Name": "attachment.instance-id", "Filter.1.Value.1": vm}
    )
    root = next(
        v.findtext("volumeId") or "" for v in reply.items("volumeSet") if v.findtext("isRoot") == "true"
    )
    snap = _completed_snapshot(endpoint, root)
    return ok(endpoint, "RegisterImage", {"Name": name, "BlockDeviceMapping.1.Ebs.SnapshotId": snap}).text(
        "imageId"
    )


def test_same_token_and_parameters_give_the_same_volume_once_even_after_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = start_simulator(state, ACCESS_KEY, SECRET_KEY, scenario="demo", transition_delay=0.05)
    try:
        params = {"SizeBytes": str(MIB), "StorageId": _storage(first.endpoint), "VolumeName": "tokened"}
        made = ok(first.endpoint, "CreateVolume", {**params, "ClientToken": "tok-1"}).text("volumeId")
        again = ok(first.endpoint, "CreateVolume", {**params, "ClientToken": "tok-1"}).text("volumeId")
        replays = first.stats().token_replays
    finally:
        first.stop()
    second = start_simulator(state, ACCESS_KEY, SECRET_KEY, scenario="demo", transition_delay=0.05)
    try:
        after_restart = ok(second.endpoint, "CreateVolume", {**params, "ClientToken": "tok-1"}).text(
            "volumeId"
        )
        other_token = ok(second.endpoint, "CreateVolume", {**params, "ClientToken": "tok-2"}).text("volumeId")
        named = _volume_ids_named(second.endpoint, "tokened")
    finally:
        second.stop()

    assert made == again == after_restart
    assert replays == {"CreateVolume": 1}
    assert other_token != made, "another token is another request"
    assert sorted(named) == sorted([made, other_token])


def test_same_token_with_other_parameters_is_refused_and_creates_nothing(demo: RunningSimulator) -> None:
    storage = _storage(demo.endpoint)
    ok(
        demo.endpoint,
        "CreateVolume",
        {"SizeBytes": str(MIB), "StorageId": storage, "VolumeName": "a", "ClientToken": "t"},
    )
    before = len(ok(demo.endpoint, "DescribeVolumes").items("volumeSet"))

    mismatch = call(
        demo.endpoint,
        "CreateVolume",
        {"SizeBytes": str(2 * MIB), "StorageId": storage, "VolumeName": "a", "ClientToken": "t"},
    )
    too_long = call(demo.endpoint, "CreateVolume", {"SizeBytes": str(MIB), "ClientToken": "x" * 65})

    assert (mismatch.status, mismatch.code) == (400, "IdempotentParameterMismatch")
    assert "'t'" in mismatch.message and "new client token" in mismatch.message
    assert (too_long.status, too_long.code) == (400, "InvalidParameterValue")
    assert len(ok(demo.endpoint, "DescribeVolumes").items("volumeSet")) == before


def test_snapshot_and_launch_honour_the_token_and_a_deleted_resource_is_not_returned(
    demo: RunningSimulator,
) -> None:
    source = ok(demo.endpoint, "CreateVolume", {"SizeBytes": str(MIB), "StorageId": _storage(demo.endpoint)})
    volume_id = source.text("volumeId")
    wait_until(lambda: volume_status(demo.endpoint, volume_id) == "available", what="volume available")
    snap_params = {"VolumeId": volume_id, "Description": "nightly", "ClientToken": "snap-token"}
    snap = ok(demo.endpoint, "CreateSnapshot", snap_params).text("snapshotId")
    snap_again = ok(demo.endpoint, "CreateSnapshot", snap_params).text("snapshotId")
    wait_until(lambda: snapshot_status(demo.endpoint, snap) == "completed", what="snapshot completed")
    ok(demo.endpoint, "DeleteSnapshot", {"SnapshotId": snap})
    after_delete = call(demo.endpoint, "CreateSnapshot", snap_params)

    launch = {
        "ImageId": _image(demo.endpoint, "token-image"),
        "MinCount": "1",
        "MaxCount": "1",
        "InstanceName": "tokened-vm",
        "ClientToken": "launch-token",
    }
    first = ok(demo.endpoint, "RunInstances", launch).items("instancesSet")[0].findtext("instanceId")
    second = ok(demo.endpoint, "RunInstances", launch).items("instancesSet")[0].findtext("instanceId")
    other_name = call(demo.endpoint, "RunInstances", {**launch, "InstanceName": "twin"})

    assert snap == snap_again
    assert (after_delete.code, "already deleted" in after_delete.message) == (
        "IdempotentParameterMismatch",
        True,
    )
    assert first == second
    assert other_name.code == "IdempotentParameterMismatch"
    assert [n for n in instance_ids_by_name(demo.endpoint) if n in ("tokened-vm", "twin")] == ["tokened-vm"]


def test_image_names_are_unique(demo: RunningSimulator) -> None:
    _image(demo.endpoint, "only-once")

    with pytest.raises(AssertionError, match=r"InvalidAMIName\.Duplicate"):
        _image(demo.endpoint, "only-once")


def test_a_lost_reply_happens_after_the_request_was_carried_out(demo: RunningSimulator) -> None:
    faults = f"{demo.admin_url}/faults"
    storage = _storage(demo.endpoint)
    assert admin(faults, "PUT", {"lost_reply_rate": {"CreateVolume": 1.0}})[0] == 200

    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        call(
            demo.endpoint, "CreateVolume", {"SizeBytes": str(MIB), "StorageId": storage, "VolumeName": "lost"}
        )
    unaffected = call(demo.endpoint, "DescribeStorages")
    bad = admin(faults, "PUT", {"lost_reply_rate": {"*": 1.5}})
    admin(faults, "DELETE")

    assert unaffected.status == 200, "other actions are not affected"
    assert len(_volume_ids_named(demo.endpoint, "lost")) == 1, "the volume was made though no reply came"
    assert demo.stats().lost_replies == {"CreateVolume": 1}
    assert bad[0] == 400 and "lost_reply_rate" in bad[1]["error"]
    assert admin(faults, "GET")[1]["lost_reply_rate"] == {}
