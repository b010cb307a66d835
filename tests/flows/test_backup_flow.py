"""The backup flow run for real (local Prefect server, simulated BingoCloud over HTTP):
restored bytes equal the source, the catalog shows the set, dedup stores nothing twice,
concurrency limits hold, and bad input is refused before anything is touched."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from support.flow import POOL_PASSPHRASE, Registered

from bingobackup.checksums import file_sha256 as sha256
from bingobackup.errors import BingoBackupError
from bingobackup.mover.restore import write_disk_from_pool
from bingobackup.pools import open_pool
from bingobackup.specs.job import load_job_spec
from catalog import Catalog
from flows.backup import run_backup_now


def run(registered: Registered, **overrides: object) -> dict:
    state = run_backup_now(load_job_spec(registered.spec(**overrides)))
    result = state.result(raise_on_failure=False)
    assert isinstance(result, dict), f"flow failed before any VM: {state.message}"
    return result


def test_backup_restores_byte_identical_and_second_run_stores_almost_nothing(
    registered: Registered, tmp_path: Path
) -> None:
    # power_off: cluster-a has a VM with a raw disk, which is only backed up powered off.
    first = run(registered, options={"power_off": True})
    assert first["status"] == "ok", first
    pool = open_pool(registered.pool_dir, POOL_PASSPHRASE)
    with Catalog.open(str(registered.pool_dir), pool=registered.pool) as cat:
        sets = cat.list_sets()
        assert list(sets["set_id"]) == [first["set_id"]]
        vms = cat.query(
            f"SELECT vm_id, vm_name, status, nics FROM vm_backups WHERE set_id = '{first['set_id']}'"
        )
        cluster_a = [i for i in registered.client.describe_instances() if i.cluster_id == "cc01"]
        expected = {i.instance_id for i in cluster_a if not i.name.startswith("backup-host-")}
        assert set(vms["vm_id"]) == expected and set(vms["status"]) == {"ok"}
        disks = cat.query(
            f"SELECT volume_id, size_bytes, is_root FROM disk_backups WHERE set_id = '{first['set_id']}'"
        )
        assert len(disks) >= len(expected)
        for disk in disks.itertuples(index=False):
            manifest = cat.disk_manifest(first["set_id"], disk.volume_id)
            out = tmp_path / f"{disk.volume_id}.raw"
            write_disk_from_pool(pool, manifest, out)
            source = registered.volume_file(disk.volume_id)
            assert sha256(out) == sha256(source), f"disk {disk.volume_id} differs after restore"
            # Holes and zero runs come back as holes, not as written zeros.
            assert out.stat().st_blocks * 512 <= source.stat().st_blocks * 512 + (1 << 20)
        first_stored = int(cat.query("SELECT bytes_stored FROM backup_sets")["bytes_stored"][0])

    second = run(registered, options={"power_off": True})
    assert second["status"] == "ok"
    with Catalog.open(str(registered.pool_dir), pool=registered.pool) as cat:
        row = cat.query(
            f"SELECT bytes_read, bytes_sent, bytes_stored FROM backup_sets WHERE set_id = '{second['set_id']}'"
        )
        assert int(row["bytes_read"][0]) > 0
        assert int(row["bytes_sent"][0]) == 0  # agent-side dedup: every chunk was already in the pool
        assert int(row["bytes_stored"][0]) < first_stored / 100
    # Nothing temporary is left in the cloud.
    assert not [s for s in registered.client.describe_snapshots()]
    assert not [v for v in registered.client.describe_volumes() if v.name.startswith("bingobackup-tmp")]


def test_parallel_disks_per_vm_limit_holds_and_operators_get_artifacts(registered: Registered) -> None:
    spec = registered.spec(
        content=[{"vm": "linux_mul_disk"}],
        options={"parallel_disks_per_vm": 1, "retry": {"count": 0, "interval_minutes": 0}},
    )
    state = run_backup_now(load_job_spec(spec))
    assert state.is_completed(), state.message
    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        run_name = client.read_flow_run(flow_run_id).name
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    assert run_name.startswith(spec["name"] + " ")  # the run says which job, and when
    by_key = {a.key: a for a in artifacts if a.key}
    assert by_key["backup-progress"].type == "progress" and by_key["backup-progress"].data == 100.0
    summary = by_key["backup-summary"]
    assert summary.type == "table" and "linux_mul_disk" in str(summary.data)
    stats = registered.sim.stats()
    vm = next(i for i in registered.client.describe_instances() if i.name == "linux_mul_disk")
    assert len(vm.block_devices) >= 3
    assert stats.max_attached_per_source_vm[vm.instance_id] == 1


def test_unknown_vm_is_refused_before_any_snapshot(registered: Registered) -> None:
    state = run_backup_now(load_job_spec(registered.spec(content=[{"vm": "no-such-vm"}])))
    assert state.is_failed()
    with pytest.raises(BingoBackupError, match="no-such-vm"):
        state.result()
    assert not list(registered.client.describe_snapshots())


def test_a_run_asks_the_server_nothing_about_result_storage(
    registered: Registered, monkeypatch: pytest.MonkeyPatch
) -> None:
    import prefect.results

    asked: list[str] = []

    def ask(*_: object) -> None:
        asked.append("sync")

    async def aask(*_: object) -> None:
        asked.append("async")

    # Prefect's lookups of the server's default result storage (one API client each).
    monkeypatch.setattr(prefect.results, "_read_server_default_result_storage_block_id", ask)
    monkeypatch.setattr(prefect.results, "_aread_server_default_result_storage_block_id", aask)
    spec = registered.spec(content=[{"vm": "no-such-vm"}])  # a whole run, start to end, quickly
    state = run_backup_now(load_job_spec(spec))
    assert state.is_failed() and "no-such-vm" in str(state.message)
    assert asked == []
