"""add-vm: volumes are copies of the user's raw images, holes kept; offline or through the server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.sim import (
    ACCESS_KEY,
    SECRET_KEY,
    admin,
    instance_ids_by_name,
    ok,
    sparse_digest,
    write_sparse_image,
)

from bingobackup.sim.addvm import add_vm
from bingobackup.sim.errors import SimulatorError
from bingobackup.sim.server import RunningSimulator, start_simulator
from bingobackup.sparse import allocated_bytes

MIB = 1 << 20


def _images(tmp_path: Path) -> list[Path]:
    return [
        write_sparse_image(tmp_path / "sys.raw", 256 * MIB, {0: b"MBR" * 100, 100 * MIB: os.urandom(MIB)}),
        write_sparse_image(tmp_path / "data.raw", 512 * MIB, {300 * MIB: os.urandom(2 * MIB)}),
    ]


def test_offline_add_vm_copies_images_keeping_holes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    start_simulator(state, ACCESS_KEY, SECRET_KEY, scenario=None).stop()
    images = _images(tmp_path)

    instance_id = add_vm(state, "my-disks", "cluster-b", images, format="raw")

    running = start_simulator(state, ACCESS_KEY, SECRET_KEY, scenario=None)
    try:
        assert instance_ids_by_name(running.endpoint)["my-disks"] == instance_id
        reply = ok(
            running.endpoint,
            "DescribeVolumes",
            {"Filter.1.Name": "attachment.instance-id", "Filter.1.Value.1": instance_id},
        )
        volumes = sorted(
            reply.items("volumeSet"), key=lambda v: v.findtext("attachmentSet/item/device") or ""
        )
        assert [v.findtext("isRoot") for v in volumes] == ["true", "false"]
        assert {v.findtext("format") for v in volumes} == {"raw"}
        for volume, image in zip(volumes, images, strict=True):
            copy = state / "volumes" / f"{volume.findtext('volumeId')}.raw"
            assert volume.findtext("sizeBytes") == str(image.stat().st_size)
            assert sparse_digest(copy) == sparse_digest(image)
            assert allocated_bytes(copy) <= allocated_bytes(image) + MIB
        with pytest.raises(SimulatorError, match="a simulator is running"):
            add_vm(state, "other", "cluster-b", images)
    finally:
        running.stop()


def test_add_vm_errors_are_clear(tmp_path: Path, empty: RunningSimulator) -> None:
    images = _images(tmp_path)

    unknown_cluster = admin(
        f"{empty.admin_url}/vms", "POST", {"name": "x", "cluster": "nope", "disks": [str(images[0])]}
    )
    missing_image = admin(
        f"{empty.admin_url}/vms",
        "POST",
        {"name": "x", "cluster": "cluster-a", "disks": [str(tmp_path / "no.raw")]},
    )
    with pytest.raises(SimulatorError, match="holds no simulator state"):
        add_vm(tmp_path / "nowhere", "x", "cluster-a", images)

    assert unknown_cluster[0] == 404 and "nope" in unknown_cluster[1]["error"]
    assert missing_image[0] == 400 and "no.raw" in missing_image[1]["error"]
