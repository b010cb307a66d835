"""A create call whose reply is lost is retried by the client and still makes one resource."""

from __future__ import annotations

from support.sim_admin import injected_faults
from support.testkeys import ACCESS_KEY, SECRET_KEY

from bingobackup.cloud import BingoCloudClient, wait_for_snapshot, wait_for_volume
from bingobackup.sim.server import RunningSimulator

MIB = 1 << 20
CREATE_ACTIONS = ("CreateVolume", "CreateSnapshot", "RegisterImage", "RunInstances")


def test_each_create_makes_exactly_one_resource_when_most_replies_are_lost(sim: RunningSimulator) -> None:
    # Only the create calls draw from the seeded generator, so the losses are reproducible;
    # a retry window long enough to outlast a run of lost replies at this rate.
    client = BingoCloudClient(sim.endpoint, ACCESS_KEY, SECRET_KEY, retry_window_seconds=60.0)
    storage = next(iter(client.describe_storages())).storage_id
    with injected_faults(
        sim,
        {"lost_reply_rate": dict.fromkeys(CREATE_ACTIONS, 0.7), "actions": list(CREATE_ACTIONS), "seed": 14},
    ):
        volume = client.create_volume(size_bytes=MIB, storage_id=storage, name="lost-reply-volume")
        wait_for_volume(client, volume.volume_id, "available", timeout=30)
        snapshot = client.create_snapshot(volume.volume_id, description="lost-reply-snapshot")
        wait_for_snapshot(client, snapshot.snapshot_id, timeout=30)
        image_id = client.register_image(name="lost-reply-image", root_snapshot_id=snapshot.snapshot_id)
        instance = client.run_instance(image_id=image_id, name="lost-reply-vm")
    stats = sim.stats()
    # A new logical create is a new request: it must not be answered with the old volume.
    second = client.create_volume(size_bytes=MIB, storage_id=storage, name="lost-reply-volume")

    # The fault really hit every create call, and the retries were answered, not repeated.
    assert all(stats.lost_replies.get(action, 0) >= 1 for action in CREATE_ACTIONS), stats.lost_replies
    assert all(stats.token_replays.get(a, 0) >= 1 for a in CREATE_ACTIONS if a != "RegisterImage")
    volumes = [v.volume_id for v in client.describe_volumes() if v.name == "lost-reply-volume"]
    assert sorted(volumes) == sorted([volume.volume_id, second.volume_id])
    snapshots = [s.snapshot_id for s in client.describe_snapshots(filters={"volume-id": volume.volume_id})]
    assert snapshots == [snapshot.snapshot_id]
    assert [i.image_id for i in client.describe_images() if i.name == "lost-reply-image"] == [image_id]
    launched = [i.instance_id for i in client.describe_instances(filters={"name": "lost-reply-vm"})]
    assert launched == [instance.instance_id]
    assert [v.volume_id for v in client.describe_volumes() if v.name == "lost-reply-vm-root"] == [
        b.volume_id for b in instance.block_devices
    ]


def test_an_image_name_taken_by_another_snapshot_is_still_an_error(cloud_client: BingoCloudClient) -> None:
    storage = next(iter(cloud_client.describe_storages())).storage_id
    snapshots = []
    for n in range(2):
        volume = cloud_client.create_volume(size_bytes=MIB, storage_id=storage, name=f"image-src-{n}")
        wait_for_volume(cloud_client, volume.volume_id, "available", timeout=30)
        snapshot = cloud_client.create_snapshot(volume.volume_id)
        snapshots.append(wait_for_snapshot(cloud_client, snapshot.snapshot_id, timeout=30).snapshot_id)
    cloud_client.register_image(name="taken", root_snapshot_id=snapshots[0])

    try:
        cloud_client.register_image(name="taken", root_snapshot_id=snapshots[1])
    except Exception as error:
        refused = error
    else:
        raise AssertionError("a second image under a taken name was registered")

    assert "InvalidAMIName.Duplicate" in str(refused) and "taken" in str(refused)
    assert [i.name for i in cloud_client.describe_images()].count("taken") == 1
