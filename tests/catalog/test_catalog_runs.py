"""Job runs and the analyst helpers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from support.catalog import CHUNK, T0, make_set

from catalog import Catalog, CatalogWriter, JobRunRecord, RunError


def _run(run_id: str, status: str, **fields: object) -> JobRunRecord:
    return JobRunRecord.model_validate(
        {"run_id": run_id, "job_name": "nightly", "status": status, "started_at": T0, "pool": "p", **fields}
    )


def test_a_run_recorded_as_it_progresses_shows_its_newest_state(tmp_path: Path) -> None:
    writer = CatalogWriter(str(tmp_path))
    writer.write_job_run(_run("run-1", "running", vms_ok=1))
    final = writer.write_job_run(
        _run(
            "run-1",
            "partial",
            ended_at=T0 + timedelta(seconds=100),
            vms_ok=2,
            vms_failed=1,
            attempts=2,
            bytes_read=200 * CHUNK,
            bytes_sent=50 * CHUNK,
            errors=(RunError(target="i-0000DEAD", message="snapshot timed out after 3600 s"),),
        )
    )
    assert len(list((tmp_path / "catalog" / "job_runs").glob("run-1.*.parquet"))) == 2  # a new file each time

    with Catalog.open(str(tmp_path)) as cat:
        runs = cat.query("SELECT * FROM job_runs")
        assert runs["status"].tolist() == ["partial"]
        assert runs["recorded_at"].iloc[0] == final.recorded_at
        errors = cat.query("SELECT e.target, e.message FROM job_runs, UNNEST(errors) AS u(e)")
        assert errors.to_dict("records") == [
            {"target": "i-0000DEAD", "message": "snapshot timed out after 3600 s"}
        ]
        speed = cat.throughput_by_run()
        assert speed["seconds"].tolist() == [100.0]
        assert speed["read_mib_per_s"].iloc[0] == pytest.approx(8.0)  # 800 MiB in 100 s
        assert speed["sent_mib_per_s"].iloc[0] == pytest.approx(2.0)


def test_success_rate_by_job_ignores_running_runs(tmp_path: Path) -> None:
    writer = CatalogWriter(str(tmp_path))
    for run_id, status in (
        ("a", "completed"),
        ("b", "completed"),
        ("c", "failed"),
        ("d", "partial"),
        ("e", "running"),
    ):
        writer.write_job_run(_run(run_id, status))
    with Catalog.open(str(tmp_path)) as cat:
        rate = cat.success_rate_by_job().to_dict("records")
    assert len(rate) == 1
    assert (rate[0]["runs"], rate[0]["completed"], rate[0]["failed"], rate[0]["partial"]) == (4, 2, 1, 1)
    assert rate[0]["success_rate"] == pytest.approx(0.5)


def test_dedup_ratio_and_growth_per_set(tmp_path: Path) -> None:
    writer = CatalogWriter(str(tmp_path))
    first = make_set("s1", vms=("web",))
    writer.write_backup_set(*first.args())
    second = make_set("s2", vms=("web",), started=T0 + timedelta(days=1), tag="changed")
    writer.write_backup_set(*second.args())

    with Catalog.open(str(tmp_path)) as cat:
        ratio = cat.dedup_ratio_by_set().set_index("set_id")
        growth = cat.growth_by_vm()
    root = first.manifests[0]
    logical = sum(d.size_bytes for d in first.disks)
    assert ratio.loc["s1", "logical_bytes"] == logical
    assert ratio.loc["s1", "data_bytes"] == root.data_bytes
    assert ratio.loc["s1", "unique_stored_bytes"] == root.stored_bytes
    assert ratio.loc["s1", "dedup_ratio"] == pytest.approx(root.data_bytes / root.stored_bytes)
    assert ratio.loc["s1", "reduction_ratio"] == pytest.approx(logical / first.backup_set.bytes_stored)
    assert growth["set_id"].tolist() == ["s1", "s2"]
    assert growth["logical_bytes"].tolist() == [logical, logical]
    assert growth["data_bytes"].tolist() == [root.data_bytes, root.data_bytes]
    assert growth["data_growth_bytes"].isna().tolist() == [True, False]
    assert growth["data_growth_bytes"].iloc[1] == 0


def test_duplicate_chunks_within_a_set_are_stored_once(tmp_path: Path) -> None:
    parts = make_set("s1", vms=("web",))
    root = parts.manifests[0]
    same = tuple(
        c.model_copy(update={"digest": root.chunks[0].digest, "stored_size": 100}) for c in root.chunks[:2]
    )
    parts.manifests[0] = root.model_copy(update={"chunks": (*same, *root.chunks[2:])})
    CatalogWriter(str(tmp_path)).write_backup_set(*parts.args())
    with Catalog.open(str(tmp_path)) as cat:
        row = cat.dedup_ratio_by_set().iloc[0]
    assert (row["chunk_refs"], row["unique_chunks"]) == (3, 2)
    assert row["referenced_stored_bytes"] == 200 + root.chunks[2].stored_size
    assert row["unique_stored_bytes"] == 100 + root.chunks[2].stored_size
