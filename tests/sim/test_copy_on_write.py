"""Snapshots and volumes from snapshots share the volume's file (no byte copied); a write through
the writer path gives the written volume a file of its own, and what shared the old one keeps it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from support.sim import (
    ACCESS_KEY,
    SECRET_KEY,
    admin,
    instance_ids_by_name,
    ok,
    snapshot_status,
    volume_status,
    wait_until,
    write_sparse_image,
)
from typer.testing import CliRunner

from bingobackup.checksums import file_sha256 as sha256
from bingobackup.cli.main import app
from bingobackup.sim.server import RunningSimulator, start_simulator

MIB = 1 << 20


def _vm_with_disk(sim: RunningSimulator, image: Path) -> str:
    """The volume id of a new VM's only disk, a copy of `image`."""
    status, body = admin(
        f"{sim.admin_url}/vms", "POST", {"name": "cow", "cluster": "cluster-a", "disks": [str(image)]}
    )
    assert status == 201, body
    reply = ok(
        sim.endpoint,
        "DescribeVolumes",
        {
            "Filter.1.Name": "attachment.instance-id",
            "Filter.1.Value.1": instance_ids_by_name(sim.endpoint)["cow"],
        },
    )
    return reply.items("volumeSet")[0].findtext("volumeId") or ""


def _space_used(sim: RunningSimulator) -> int:
    """Bytes used on all the datastores."""
    return sum(
        int(s.findtext("spaceUsed") or 0) for s in ok(sim.endpoint, "DescribeStorages").items("storageSet")
    )


def test_a_write_after_a_snapshot_changes_the_volume_only(empty: RunningSimulator, tmp_path: Path) -> None:
    image = write_sparse_image(
        tmp_path / "disk.raw", 64 * MIB, {0: os.urandom(4 * MIB), 48 * MIB: os.urandom(8 * MIB)}
    )
    volume = _vm_with_disk(empty, image)
    volumes, snapshots = empty.state_dir / "volumes", empty.state_dir / "snapshots"
    used_before = _space_used(empty)

    snap = ok(empty.endpoint, "CreateSnapshot", {"VolumeId": volume}).text("snapshotId")
    wait_until(lambda: snapshot_status(empty.endpoint, snap) == "completed", what="snapshot completed")
    copy = ok(empty.endpoint, "CreateVolume", {"SnapshotId": snap}).text("volumeId")
    wait_until(lambda: volume_status(empty.endpoint, copy) == "available", what="volume available")

    # O(metadata): the snapshot and the volume made from it are the volume's file, not copies of it.
    assert os.path.samefile(snapshots / f"{snap}.raw", volumes / f"{volume}.raw")
    assert os.path.samefile(volumes / f"{copy}.raw", snapshots / f"{snap}.raw")
    assert _space_used(empty) == used_before

    new_bytes = os.urandom(3 * MIB)
    (tmp_path / "new.raw").write_bytes(new_bytes)
    status, body = admin(
        f"{empty.admin_url}/volumes/{volume}/write",
        "POST",
        {"offset": 49 * MIB, "source": str(tmp_path / "new.raw")},
    )
    assert (status, body["written"]) == (200, len(new_bytes))

    expected = tmp_path / "expected.raw"
    shutil.copyfile(image, expected)
    with expected.open("r+b") as f:
        f.seek(49 * MIB)
        f.write(new_bytes)
    assert sha256(volumes / f"{volume}.raw") == sha256(expected)
    assert sha256(snapshots / f"{snap}.raw") == sha256(image)
    assert sha256(volumes / f"{copy}.raw") == sha256(image)
    assert os.path.samefile(volumes / f"{copy}.raw", snapshots / f"{snap}.raw"), (
        "the untouched copy stays shared"
    )

    # Writing the volume made from the snapshot leaves the snapshot alone too.
    empty.write_volume(copy, 0, b"\xff" * 4096)
    assert sha256(snapshots / f"{snap}.raw") == sha256(image)
    with (volumes / f"{copy}.raw").open("rb") as f:
        assert f.read(4096) == b"\xff" * 4096


def test_a_larger_volume_from_a_snapshot_gets_the_bytes_and_the_size(
    empty: RunningSimulator, tmp_path: Path
) -> None:
    image = write_sparse_image(tmp_path / "disk.raw", 64 * MIB, {MIB: os.urandom(MIB)})
    volume = _vm_with_disk(empty, image)
    snap = ok(empty.endpoint, "CreateSnapshot", {"VolumeId": volume}).text("snapshotId")
    wait_until(lambda: snapshot_status(empty.endpoint, snap) == "completed", what="snapshot completed")

    bigger = ok(empty.endpoint, "CreateVolume", {"SnapshotId": snap, "SizeBytes": str(128 * MIB)}).text(
        "volumeId"
    )
    wait_until(lambda: volume_status(empty.endpoint, bigger) == "available", what="volume available")

    path = empty.state_dir / "volumes" / f"{bigger}.raw"
    assert path.stat().st_size == 128 * MIB
    assert (empty.state_dir / "snapshots" / f"{snap}.raw").stat().st_size == 64 * MIB
    with path.open("rb") as f, image.open("rb") as original:
        assert f.read(64 * MIB) == original.read()


def test_writes_that_do_not_fit_or_name_nothing_are_refused(empty: RunningSimulator, tmp_path: Path) -> None:
    volume = _vm_with_disk(empty, write_sparse_image(tmp_path / "disk.raw", MIB, {0: b"boot"}))
    (tmp_path / "two.raw").write_bytes(b"x" * 2 * MIB)

    past_end = admin(
        f"{empty.admin_url}/volumes/{volume}/write", "POST", {"source": str(tmp_path / "two.raw")}
    )
    unknown = admin(
        f"{empty.admin_url}/volumes/vol-NOPE/write", "POST", {"source": str(tmp_path / "two.raw")}
    )
    unreadable = admin(
        f"{empty.admin_url}/volumes/{volume}/write", "POST", {"source": str(tmp_path / "no.raw")}
    )

    assert past_end[0] == 400 and f"do not fit in the volume's {MIB} bytes" in past_end[1]["error"]
    assert unknown[0] == 404 and "vol-NOPE" in unknown[1]["error"]
    assert unreadable[0] == 400 and "no.raw" in unreadable[1]["error"]


def test_cli_writes_a_stopped_simulators_volume_and_not_a_running_ones(tmp_path: Path) -> None:
    state = tmp_path / "state"
    running = start_simulator(state, ACCESS_KEY, SECRET_KEY, scenario=None)
    try:
        volume = _vm_with_disk(running, write_sparse_image(tmp_path / "disk.raw", MIB, {0: b"boot"}))
        snap = ok(running.endpoint, "CreateSnapshot", {"VolumeId": volume}).text("snapshotId")
        wait_until(lambda: snapshot_status(running.endpoint, snap) == "completed", what="snapshot completed")
        (tmp_path / "patch.raw").write_bytes(b"patched!")
        args = ["sim", "write-volume", volume, "--from", str(tmp_path / "patch.raw"), "--offset", "512"]
        refused = CliRunner().invoke(app, [*args, "--state", str(state)])
        through_server = CliRunner().invoke(app, [*args, "--endpoint", running.endpoint])
    finally:
        running.stop()
    offline = CliRunner().invoke(
        app, ["sim", "write-volume", volume, "--from", str(tmp_path / "patch.raw"), "--state", str(state)]
    )

    assert refused.exit_code != 0 and "a simulator is running" in str(refused.exception or refused.output)
    assert through_server.exit_code == 0, through_server.output
    assert offline.exit_code == 0, offline.output
    data = (state / "volumes" / f"{volume}.raw").read_bytes()
    assert data[:8] == b"patched!" and data[512:520] == b"patched!"
    assert (state / "snapshots" / f"{snap}.raw").read_bytes()[:4] == b"boot"
