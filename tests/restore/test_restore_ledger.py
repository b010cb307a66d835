"""The restore ledger kept outside the process (`LedgerKeeper`): what a killed run created,
even a volume whose create call's reply it never saw, is removed by the job's next run; what
a live run holds is not touched."""

from __future__ import annotations

import subprocess
import sys

from bingobackup.cloud.client import BingoCloudClient, new_client_token
from bingobackup.processes import process_space
from bingobackup.restore.ledger import Ledger, LedgerRecord, VolumeCreate, remove_left_by_dead_runs

MIB = 1 << 20


class MemoryKeeper:
    """A `LedgerKeeper` in a dict (the Prefect one is tasks/restore_ledger.py)."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str, str], LedgerRecord] = {}

    def save(self, record: LedgerRecord) -> None:
        key = (record.job, record.vm, record.writer)
        if record.items:
            self.records[key] = record
        else:
            self.records.pop(key, None)

    def of_job(self, job: str) -> list[LedgerRecord]:
        return [r for r in self.records.values() if r.job == job]


def _dead_pid() -> int:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True
    )
    return int(child.stdout)


def test_a_dead_runs_volumes_go_even_one_whose_reply_it_never_saw_and_a_live_runs_stay(
    cloud_client: BingoCloudClient,
) -> None:
    storage = next(iter(cloud_client.describe_storages())).storage_id
    keeper = MemoryKeeper()
    live = Ledger(keeper, "restore-web", "web-live")
    kept = cloud_client.create_volume(size_bytes=MIB, storage_id=storage, name="live-disk")
    live.add("volume", kept.volume_id, "the live run's disk")

    dead = Ledger(keeper, "restore-web", "web-dead")
    recorded = cloud_client.create_volume(size_bytes=MIB, storage_id=storage, name="dead-disk-0")
    dead.add("volume", recorded.volume_id, "disk 0")
    token = new_client_token()
    create: VolumeCreate = {"size_bytes": MIB, "storage_id": storage, "name": "dead-disk-1", "node_id": None}
    dead.intend_volume(token, create, "disk 1")
    unseen = cloud_client.create_volume(**create, client_token=token)  # its reply "lost": the process died
    # As the dead process left it: the same records, under a pid that no longer runs.
    (key,) = [k for k in keeper.records if k[1] == "web-dead"]
    record = keeper.records.pop(key)
    keeper.save(record.model_copy(update={"writer": f"{process_space()}|{_dead_pid()}"}))

    removed, failed = remove_left_by_dead_runs(cloud_client, keeper, "restore-web", timeout=30)

    assert failed == []
    assert sorted(removed) == sorted(
        [f"volume {recorded.volume_id} (disk 0)", f"volume {unseen.volume_id} (disk 1)"]
    )
    volumes = {v.volume_id for v in cloud_client.describe_volumes()}
    assert kept.volume_id in volumes and not {recorded.volume_id, unseen.volume_id} & volumes
    assert [r.vm for r in keeper.of_job("restore-web")] == ["web-live"]  # the dead run's record is gone
