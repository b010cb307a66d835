"""The restore spec's reconnect time: dropped cloud connections and a pool whose storage fails
for a while are ridden out, and the restored disk is byte-identical."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
from support.flow import Registered
from support.restore import back_up, sha256
from support.sim_admin import injected_faults

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.resources.models import CloudRegistration
from bingobackup.storage.localdir import LocalDirBlobStore
from flows.restore import restore_disk


def test_lost_cloud_and_pool_links_inside_the_reconnect_time_do_not_fail_the_restore(
    registered: Registered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backed_up = back_up(registered, tmp_path, data_mib=8)

    real_get = LocalDirBlobStore.get
    chunk_reads, failures = [0], [0]

    def link_down_for_a_while(self: LocalDirBlobStore, key: str, *args: Any, **kwargs: Any) -> bytes:
        if key.startswith(("chunks/", "data/")):
            chunk_reads[0] += 1
            if chunk_reads[0] > 1 and failures[0] < 4:
                failures[0] += 1
                raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_get(self, key, *args, **kwargs)

    real_client = CloudRegistration.client
    windows: list[float] = []

    def recording_client(self: CloudRegistration, **kwargs: Any) -> BingoCloudClient:
        client = real_client(self, **kwargs)
        windows.append(client.retry_window_seconds)
        return client

    monkeypatch.setattr(LocalDirBlobStore, "get", link_down_for_a_while)
    monkeypatch.setattr(CloudRegistration, "client", recording_client)
    with injected_faults(
        registered.sim,
        {"drop_rate": 0.3, "seed": 5, "actions": ["DescribeVolumes", "CreateVolume", "AttachVolume"]},
    ):
        state, result = backed_up.run(
            restore_disk,
            name="restore-through-outages",
            kind="disk",
            target={"disks": [{"volume": backed_up.data_volume, "name": "data-after-outage"}]},
            options={"reconnect_minutes": 2},
        )

    assert state.is_completed(), state.message
    assert failures[0] == 4  # the pool really was unreachable for a while
    # Every cloud client of the run retries for the spec's reconnect time, not a default.
    assert windows and set(windows) == {120.0}
    client = registered.client
    [volume] = [v for v in client.describe_volumes() if v.name == "data-after-outage"]
    assert sha256(registered.volume_file(volume.volume_id)) == backed_up.sha[backed_up.data_volume]
    assert result["status"] == "ok"
