"""Disk restore to the original and to another VM; the verification code gates everything
(pause in the UI, wrong code stays paused); an injected failure leaves no orphan behind."""

from __future__ import annotations

import contextvars
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterName,
)
from prefect.flow_runs import resume_flow_run
from support.flow import Registered
from support.restore import BackedUp, back_up, sha256

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.errors import CloudError
from bingobackup.restore.verification import verification_code
from bingobackup.specs.restore import load_restore_spec
from flows.restore import restore_disk, restore_vm


@pytest.fixture
def backed_up(registered: Registered, tmp_path: Path) -> BackedUp:
    return back_up(registered, tmp_path)


def _volume_ids(client: BingoCloudClient) -> set[str]:
    return {v.volume_id for v in client.describe_volumes()}


def test_disk_restore_attaches_new_volumes_to_the_original_and_to_another_vm(backed_up: BackedUp) -> None:
    client = backed_up.registered.client
    original = backed_up.instance
    state, result = backed_up.run(
        restore_disk,
        kind="disk",
        target={"disks": [{"volume": backed_up.data_volume, "name": "data-again", "storage": "sto-a-ceph"}]},
    )
    assert state.is_completed(), state.message
    [outcome] = result["outcomes"]
    assert outcome["instance_id"] == original.instance_id
    now = client.get_instance(original.instance_id)
    # Nothing already attached was displaced; the new disk took a free device.
    assert {b.device_name: b.volume_id for b in original.block_devices}.items() <= {
        b.device_name: b.volume_id for b in now.block_devices
    }.items()
    [added] = [
        b for b in now.block_devices if b.volume_id not in {x.volume_id for x in original.block_devices}
    ]
    volume = client.get_volume(added.volume_id)
    assert (volume.name, volume.storage_id, added.device_name) == ("data-again", "sto-a-ceph", "/dev/vdc")
    assert sha256(backed_up.registered.volume_file(volume.volume_id)) == backed_up.sha[backed_up.data_volume]

    other = next(i for i in client.describe_instances() if i.name == "linux_local")
    state, result = backed_up.run(
        restore_disk,
        name="restore-to-other",
        kind="disk",
        target={
            "attach_to": other.instance_id,
            "disks": [{"volume": backed_up.root_volume, "name": "old-root"}],
        },
    )
    assert state.is_completed(), state.message
    attached = client.get_instance(other.instance_id).block_devices
    [new] = [b for b in attached if client.get_volume(b.volume_id).name == "old-root"]
    assert new.device_name == "/dev/vdb"
    assert sha256(backed_up.registered.volume_file(new.volume_id)) == backed_up.sha[backed_up.root_volume]


def _paused_state(run_name: str, not_id: Any = None, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=run_name))
            )
            for run in runs:
                if run.state and run.state.is_paused() and run.state.id != not_id:
                    return run
            time.sleep(0.2)
    raise AssertionError(f"flow run {run_name} did not pause within {timeout} s")


def test_nothing_is_created_until_the_right_code_is_typed_in_the_paused_run(
    backed_up: BackedUp, caplog: pytest.LogCaptureFixture
) -> None:
    client = backed_up.registered.client
    spec = load_restore_spec(
        backed_up.spec(
            name="restore-paused",
            target={
                "nics": [{"index": 0, "ip": "auto", "mac": "auto"}, {"index": 1, "ip": "auto", "mac": "auto"}]
            },
        )
    )
    before = _volume_ids(client)
    outcome: dict[str, Any] = {}
    # The run's thread sees this test's Prefect settings (they live in context variables).
    context = contextvars.copy_context()
    runner = threading.Thread(
        target=context.run,
        args=(lambda: outcome.update(state=restore_vm(spec=spec, return_state=True)),),
        daemon=True,
    )
    runner.start()
    run = _paused_state("restore-paused")
    with get_client(sync_client=True) as prefect:
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    shown = {a.key: str(a.data) for a in artifacts if a.key}
    assert verification_code(spec) in shown["restore-verification-code"]  # the operator sees the code
    assert _volume_ids(client) == before
    resume_flow_run(run.id, run_input={"code": "WRONG1"})
    again = _paused_state("restore-paused", not_id=run.state.id)
    assert _volume_ids(client) == before  # a wrong code keeps it paused, nothing created
    # The run's log says why it paused again (logged before that pause, in this process).
    assert "The code typed ('WRONG1') is wrong; nothing was created" in caplog.text
    resume_flow_run(again.id, run_input={"code": verification_code(spec).lower()})
    runner.join(timeout=120)
    assert not runner.is_alive()
    state = outcome["state"]
    assert state.is_completed(), state.message
    assert state.result()["status"] == "ok"
    with get_client(sync_client=True) as prefect:
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    by_key = {a.key: a for a in artifacts if a.key}
    assert by_key["restore-progress"].data == 100.0
    assert [row["status"] for row in json.loads(str(by_key["restore-summary"].data))] == ["ok"]


def test_injected_failure_mid_restore_removes_everything_or_names_each_leftover(
    backed_up: BackedUp, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = backed_up.registered.client
    volumes_before = _volume_ids(client)

    def broken_stop(self: BingoCloudClient, *args: object, **kwargs: object) -> object:
        raise CloudError("injected: the node lost power", code="InternalError")

    monkeypatch.setattr(BingoCloudClient, "stop_instances", broken_stop)
    nics = [{"index": 0, "ip": "auto", "mac": "auto"}, {"index": 1, "ip": "auto", "mac": "auto"}]
    state, result = backed_up.run(restore_vm, target={"name": "doomed", "nics": nics})
    assert state.is_failed()
    assert "injected: the node lost power" in (state.message or "")
    assert not [i for i in client.describe_instances() if i.name == "doomed" and i.state.name != "terminated"]
    assert _volume_ids(client) == volumes_before
    assert not list(client.describe_snapshots())
    assert not [i for i in client.describe_images() if i.name.startswith("bingobackup-restore")]

    def broken_deregister(self: BingoCloudClient, image_id: str) -> None:
        raise CloudError("injected: image service down", code="InternalError")

    monkeypatch.setattr(BingoCloudClient, "deregister_image", broken_deregister)
    state, result = backed_up.run(restore_vm, target={"name": "doomed-2", "nics": nics})
    assert state.is_failed()
    [image] = [i for i in client.describe_images() if i.name.startswith("bingobackup-restore")]
    [snapshot] = list(client.describe_snapshots())
    # What could not be removed is named, each by kind and id, in the run's message and report.
    assert f"image {image.image_id}" in (state.message or "")
    assert f"snapshot {snapshot.snapshot_id}" in result["outcomes"][0]["leftovers"][1]
    assert _volume_ids(client) == volumes_before


def test_a_catalog_disk_size_unlike_the_sealed_manifest_stops_the_restore_before_any_volume(
    backed_up: BackedUp,
) -> None:
    """The catalog sizes the new volume, but the pool's sealed manifest says what the disk is:
    a catalog edited to disagree stops the disk before anything is created, naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    client = backed_up.registered.client
    volumes_before = _volume_ids(client)
    (path,) = (backed_up.registered.pool_dir / "catalog" / "disk_backups").rglob("*.parquet")
    table = pq.read_table(path)
    sizes = [
        size + (1 << 20) if volume == backed_up.data_volume else size
        for size, volume in zip(
            table.column("size_bytes").to_pylist(), table.column("volume_id").to_pylist(), strict=True
        )
    ]
    column = table.schema.get_field_index("size_bytes")
    field = table.schema.field(column)
    pq.write_table(table.set_column(column, field, pa.array(sizes, field.type)), path)

    state, _ = backed_up.run(
        restore_disk, kind="disk", target={"disks": [{"volume": backed_up.data_volume, "name": "data-again"}]}
    )
    assert state.is_failed()
    message = state.message or ""
    assert (
        f"disk {backed_up.data_volume} (set {backed_up.set_id}): the catalog says the disk holds" in message
    )
    assert "the pool's sealed manifest" in message and "Nothing was created" in message
    assert _volume_ids(client) == volumes_before
