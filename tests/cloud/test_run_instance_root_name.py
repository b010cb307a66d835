"""RunInstances names the new root volume as asked (extension `RootVolumeName`), else `<vm>-root`."""

from __future__ import annotations

from bingobackup.cloud import BingoCloudClient, wait_for_snapshot, wait_for_volume
from bingobackup.cloud.models import Instance


def _root_volume_name(client: BingoCloudClient, instance: Instance) -> str:
    root = next(b for b in instance.block_devices if b.device_name == instance.root_device_name)
    volume = client.get_volume(root.volume_id)
    assert volume.is_root
    return volume.name


def test_root_volume_takes_the_requested_name_or_the_default(cloud_client: BingoCloudClient) -> None:
    storage = next(iter(cloud_client.describe_storages()))
    volume = cloud_client.create_volume(size_bytes=1 << 20, storage_id=storage.storage_id, name="src")
    wait_for_volume(cloud_client, volume.volume_id, "available", timeout=30)
    snapshot = cloud_client.create_snapshot(volume.volume_id, description="root-name test")
    wait_for_snapshot(cloud_client, snapshot.snapshot_id, timeout=30)
    image_id = cloud_client.register_image(name="root-name-test", root_snapshot_id=snapshot.snapshot_id)

    named = cloud_client.run_instance(image_id=image_id, name="named-vm", root_volume_name="web-system")
    default = cloud_client.run_instance(image_id=image_id, name="plain-vm")

    assert _root_volume_name(cloud_client, named) == "web-system"
    assert _root_volume_name(cloud_client, default) == "plain-vm-root"
