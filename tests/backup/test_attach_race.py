"""Two processes attaching to one backup host at once (two jobs' runs on it): the device name
one chose can be taken by the other before its attach arrives. The cloud refuses the name as
in use, and the attach must choose the next free name, not fail the disk (44 of 100 scheduled
runs failed so in the scheduler benchmark)."""

from __future__ import annotations

from typing import Any

import pytest

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.errors import CloudError
from bingobackup.cloud.waiters import wait_for_volume
from bingobackup.jobs.staging import attach_at_free_device
from bingobackup.sim.server import RunningSimulator

GIB = 1 << 30


class OtherProcessAttachesFirst:
    """The cloud client, with another process's attach of `rival` landing just before each of
    our first `times` attaches, at the very device name we chose."""

    def __init__(self, client: BingoCloudClient, rivals: list[str], host: str) -> None:
        self._client, self._rivals, self._host = client, rivals, host

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def attach_volume(self, volume_id: str, instance_id: str, device: str) -> Any:
        if self._rivals:
            self._client.attach_volume(self._rivals.pop(0), self._host, device)
        return self._client.attach_volume(volume_id, instance_id, device)


def _host_and_volumes(client: BingoCloudClient, count: int) -> tuple[str, list[str]]:
    host = next(i for i in client.describe_instances() if i.name == "backup-host-cluster-a")
    storage = next(s.storage_id for s in client.describe_storages() if s.cluster_id == host.cluster_id)
    volumes = [client.create_volume(size_bytes=GIB, storage_id=storage).volume_id for _ in range(count)]
    for volume in volumes:
        wait_for_volume(client, volume, "available", timeout=30)
    return host.instance_id, volumes


def test_a_device_name_taken_by_another_process_is_chosen_again(
    sim: RunningSimulator, cloud_client: BingoCloudClient
) -> None:
    host, (ours, rival_1, rival_2) = _host_and_volumes(cloud_client, 3)
    racing = OtherProcessAttachesFirst(cloud_client, [rival_1, rival_2], host)

    device = attach_at_free_device(racing, ours, host)  # type: ignore[arg-type]

    attached = {
        v.volume_id: v.attachments[0].device for v in cloud_client.describe_volumes() if v.attachments
    }
    assert attached[ours] == device
    assert len({attached[ours], attached[rival_1], attached[rival_2]}) == 3


def test_other_refusals_are_not_taken_for_a_race(
    sim: RunningSimulator, cloud_client: BingoCloudClient
) -> None:
    host, (ours,) = _host_and_volumes(cloud_client, 1)
    cloud_client.attach_volume(ours, host, "/dev/vdz")
    with pytest.raises(CloudError, match="already attached"):
        attach_at_free_device(cloud_client, ours, host)
