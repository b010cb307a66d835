"""A pool kind that is not a local directory, end to end through the Prefect flows: the backup
flow writes a VM to an object pool (moto's S3 server on 127.0.0.1), its catalog lands in the
bucket, and the restore disk flow finds the set there (`set: latest`) and writes the disk back
with SHA-256 equality."""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs
import pytest
from support.flow import Registered, object_dedup_pool, register_cloud_and_pool
from support.restore import add_vm, back_up, sha256
from support.s3 import moto_client

from bingobackup.cli.prefect_server import ServerInfo
from bingobackup.cloud.client import BingoCloudClient
from bingobackup.mover.restore import write_disk_from_pool as restore_disk_image
from bingobackup.resources.pools import open_registered_pool, pool_catalog_root
from bingobackup.sim.server import RunningSimulator
from bingobackup.specs.job import load_job_spec
from catalog import Catalog
from flows.backup import run_backup_now
from flows.restore import restore_disk


@pytest.fixture
def on_object_pool(
    prefect_server: ServerInfo,
    sim: RunningSimulator,
    cloud_client: BingoCloudClient,
    moto_s3: str,
    tmp_path: Path,
) -> Registered:
    """The simulated cloud and an encrypted object pool, registered in the session's Prefect server."""

    return register_cloud_and_pool(sim, cloud_client, tmp_path / "no-local-pool", object_dedup_pool(moto_s3))


def test_backup_and_disk_restore_flows_over_an_object_pool(
    on_object_pool: Registered, moto_s3: str, tmp_path: Path
) -> None:
    backed_up = back_up(on_object_pool, tmp_path, name="web-object", data_mib=2)

    from tasks.blocks import PrefectRegistryStore

    registration = PrefectRegistryStore().get_pool(on_object_pool.pool)
    assert registration is not None and registration.s3 is not None
    assert not (tmp_path / "no-local-pool").exists()  # nothing of the pool is on this host's disk
    keys = {
        o["Key"]
        for page in moto_client(moto_s3)
        .get_paginator("list_objects_v2")
        .paginate(Bucket=registration.s3.bucket)
        for o in page.get("Contents", [])
    }
    prefix = registration.s3.prefix
    assert f"{prefix}/manifests/{backed_up.set_id}/{backed_up.data_volume}.json" in keys
    assert any(k.startswith(f"{prefix}/catalog/backup_sets/") for k in keys)
    root, filesystem = pool_catalog_root(registration)
    assert isinstance(filesystem, pafs.S3FileSystem)
    with Catalog.open(root, pool=on_object_pool.pool, filesystem=filesystem) as catalog:
        latest = catalog.latest_set("web-object")
        assert latest is not None and latest.set_id == backed_up.set_id  # an analyst needs the bucket alone

    state, result = backed_up.run(
        restore_disk,
        kind="disk",
        source={"vm": "web-object", "set": "latest"},
        target={"disks": [{"volume": backed_up.data_volume, "name": "data-from-s3"}]},
    )
    assert state.is_completed(), state.message
    [outcome] = result["outcomes"]
    client = on_object_pool.client
    now = client.get_instance(backed_up.instance.instance_id)
    before = {b.volume_id for b in backed_up.instance.block_devices}
    [added] = [b for b in now.block_devices if b.volume_id not in before]
    assert client.get_volume(added.volume_id).name == "data-from-s3"
    assert sha256(on_object_pool.volume_file(added.volume_id)) == backed_up.sha[backed_up.data_volume]
    assert outcome["instance_id"] == backed_up.instance.instance_id


def test_a_retried_vm_keeps_its_finished_disks_on_a_write_once_object_pool(
    on_object_pool: Registered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attempt 1 backs up the system disk and fails on the data disk; attempt 2 backs up only the
    data disk (an object pool never replaces a committed manifest) and the set restores whole."""
    import flows.backup

    instance = add_vm(on_object_pool, tmp_path, "retry-object", data_mib=2)
    root, data = (b.volume_id for b in sorted(instance.block_devices, key=lambda b: b.device_name))
    real, staged = flows.backup.staged_volume, []

    def data_disk_fails_once(client, job_name, snap, *args, **kwargs):  # type: ignore[no-untyped-def]
        staged.append(snap.volume_id)
        if snap.volume_id == data and staged.count(data) == 1:
            raise ConnectionError("backup host lost its link to the cloud")
        return real(client, job_name, snap, *args, **kwargs)

    monkeypatch.setattr(flows.backup, "staged_volume", data_disk_fails_once)
    state = run_backup_now(
        load_job_spec(
            on_object_pool.spec(
                name="job-retry-object",
                content=[{"vm": "retry-object"}],
                options={"retry": {"count": 1, "interval_minutes": 0}},
            )
        )
    )
    assert state.is_completed(), state.message
    summary = state.result()
    assert summary["rows"][0]["history"] == (
        f"#1 failed (disk {data}: backup host lost its link to the cloud); #2 ok"
    )
    assert sorted(staged) == sorted([root, data, data])  # the system disk was read once

    from tasks.blocks import PrefectRegistryStore

    registration = PrefectRegistryStore().get_pool(on_object_pool.pool)
    assert registration is not None
    pool = open_registered_pool(registration)
    root_uri, filesystem = pool_catalog_root(registration)
    with Catalog.open(root_uri, pool=on_object_pool.pool, filesystem=filesystem) as catalog:
        for volume in (root, data):
            exported = tmp_path / f"{volume}.raw"
            restore_disk_image(pool, catalog.disk_manifest(str(summary["set_id"]), volume), exported)
            assert sha256(exported) == sha256(on_object_pool.volume_file(volume))
