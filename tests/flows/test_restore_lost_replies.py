"""Create calls whose reply is lost (the cloud made the resource, the client never heard) leave
no duplicate and no orphan: a VM restore makes exactly its VM and volumes, a backup run leaves
no temporary snapshot or volume behind."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from support.flow import Registered
from support.restore import add_vm, back_up, sha256
from support.sim_admin import injected_faults

from bingobackup.specs.job import load_job_spec
from flows.backup import run_backup_now
from flows.restore import restore_vm

RATE = 0.6  # most create calls lose their first reply; the client retries within its window


@contextmanager
def replies_lost(registered: Registered, actions: Sequence[str], seed: int) -> Iterator[None]:
    """The simulator carries out `actions` but drops the connection before replying, at RATE.
    Only these actions draw from the seeded generator, so the losses do not depend on polling."""
    body = {"lost_reply_rate": dict.fromkeys(actions, RATE), "actions": list(actions), "seed": seed}
    with injected_faults(registered.sim, body):
        yield


def test_backup_with_lost_create_replies_leaves_no_temporary_snapshot_or_volume(
    registered: Registered, tmp_path: Path
) -> None:
    add_vm(registered, tmp_path, "lossy-backup")
    spec = load_job_spec(registered.spec(name="job-lossy", content=[{"vm": "lossy-backup"}]))

    with replies_lost(registered, ["CreateSnapshot", "CreateVolume"], seed=8):
        state = run_backup_now(spec)
    stats = registered.sim.stats()

    result = state.result(raise_on_failure=False)
    assert isinstance(result, dict) and result["status"] == "ok", state.message
    assert stats.lost_replies.get("CreateSnapshot", 0) >= 1, stats.lost_replies
    assert stats.lost_replies.get("CreateVolume", 0) >= 1, stats.lost_replies
    client = registered.client
    assert not [
        s.snapshot_id for s in client.describe_snapshots() if s.description.startswith("bingobackup-tmp:")
    ]
    assert not [v.volume_id for v in client.describe_volumes() if v.name.startswith("bingobackup-tmp:")]


def test_vm_restore_with_lost_create_replies_makes_one_vm_and_exactly_its_volumes(
    registered: Registered, tmp_path: Path
) -> None:
    backed_up = back_up(registered, tmp_path)
    client = registered.client
    volumes_before = {v.volume_id for v in client.describe_volumes()}
    creates = ["CreateVolume", "CreateSnapshot", "RegisterImage", "RunInstances"]

    with replies_lost(registered, creates, seed=22):
        state, result = backed_up.run(
            restore_vm,
            name="restore-lossy",
            target={
                "name": "web-lossy",
                "disks": [
                    {"volume": backed_up.root_volume, "name": "lossy-root"},
                    {"volume": backed_up.data_volume, "name": "lossy-data"},
                ],
                "nics": [
                    {"index": 0, "ip": "auto", "mac": "auto"},
                    {"index": 1, "ip": "auto", "mac": "auto"},
                ],
            },
        )
    stats = registered.sim.stats()

    assert state.is_completed(), state.message
    assert result["status"] == "ok", result
    assert all(stats.lost_replies.get(action, 0) >= 1 for action in creates), stats.lost_replies
    # One VM of that name ever launched (not even a terminated twin), running on its two disks.
    [new] = [i for i in client.describe_instances() if i.name == "web-lossy"]
    assert new.instance_id == result["outcomes"][0]["instance_id"] and new.state.name == "running"
    devices = {b.device_name: client.get_volume(b.volume_id) for b in new.block_devices}
    assert {d: v.name for d, v in devices.items()} == {"/dev/vda": "lossy-root", "/dev/vdb": "lossy-data"}
    # The only new volumes are the VM's own: no duplicate, no leftover written system disk.
    new_volumes = {v.volume_id for v in client.describe_volumes()} - volumes_before
    assert new_volumes == {v.volume_id for v in devices.values()}
    assert (
        sha256(registered.volume_file(devices["/dev/vda"].volume_id)) == backed_up.sha[backed_up.root_volume]
    )
    assert (
        sha256(registered.volume_file(devices["/dev/vdb"].volume_id)) == backed_up.sha[backed_up.data_volume]
    )
    assert not list(client.describe_snapshots())
    assert not [i for i in client.describe_images() if i.name.startswith("bingobackup-restore")]
