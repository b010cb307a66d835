"""Browsing sets by host (cloud → cluster → VM → points in time → disks) and by job (job → runs → VMs)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from support.catalog import T0, make_set

from catalog import Catalog, CatalogWriter, browse_by_host, browse_by_job


def _catalog(tmp_path: Path) -> Catalog:
    a = CatalogWriter(str(tmp_path / "a"))
    a.write_backup_set(*make_set("s1", job="nightly", started=T0, vms=("web_1", "db")).args())
    a.write_backup_set(*make_set("s2", job="nightly", started=T0 + timedelta(days=1), vms=("web_1",)).args())
    failed = make_set("s3", job="weekly", started=T0 + timedelta(days=2), vms=("db",))
    failed.vms[0] = failed.vms[0].model_copy(update={"status": "failed", "error": "snapshot timed out"})
    failed.disks, failed.manifests = [], []
    a.write_backup_set(*failed.args())
    CatalogWriter(str(tmp_path / "b")).write_backup_set(
        *make_set("s4", job="offsite", started=T0 + timedelta(days=3), vms=("web_1",)).args()
    )
    return Catalog([("pool-a", str(tmp_path / "a")), ("pool-b", str(tmp_path / "b"))])


def test_host_view_nests_cloud_cluster_vm_points_and_disks(tmp_path: Path) -> None:
    with _catalog(tmp_path) as cat:
        [cloud] = browse_by_host(cat)
    assert cloud.cloud == "demo"
    [cluster] = cloud.clusters
    assert cluster.cluster_id == "cluster-a"
    db, web = cluster.vms  # by name
    assert (db.vm_name, web.vm_name) == ("db", "web_1")
    # Points in time newest first, across pools.
    assert [(p.pool, p.set_id) for p in web.points] == [("pool-b", "s4"), ("pool-a", "s2"), ("pool-a", "s1")]
    assert [(p.set_id, p.status, p.job_name) for p in db.points] == [
        ("s3", "failed", "weekly"),
        ("s1", "ok", "nightly"),
    ]
    assert db.points[0].disks == ()  # the failed backup holds no disk
    newest = web.points[0]
    assert [(d.volume_id, d.device_name, d.is_root) for d in newest.disks] == [
        ("vol-web_1-root", "/dev/vda", True),
        ("vol-web_1-data", "/dev/vdb", False),
    ]
    assert newest.disks[0].size_bytes == make_set("x", vms=("web_1",)).disks[0].size_bytes


def test_job_view_nests_jobs_runs_and_vms(tmp_path: Path) -> None:
    with _catalog(tmp_path) as cat:
        jobs = browse_by_job(cat)
    assert [j.job_name for j in jobs] == ["nightly", "offsite", "weekly"]
    nightly = jobs[0]
    assert [(r.set_id, r.run_id) for r in nightly.runs] == [("s2", "run-s2"), ("s1", "run-s1")]
    assert [(v.vm_name, v.status, v.disk_count) for v in nightly.runs[1].vms] == [
        ("db", "ok", 2),
        ("web_1", "ok", 2),
    ]
    [weekly_run] = jobs[2].runs
    [failed_vm] = weekly_run.vms
    assert (failed_vm.status, failed_vm.error, failed_vm.disk_count) == ("failed", "snapshot timed out", 0)


def test_both_views_filter_by_pool_and_search_vm_names(tmp_path: Path) -> None:
    with _catalog(tmp_path) as cat:
        # Case-insensitive substring; `_` is a character, not a LIKE wildcard.
        [cloud] = browse_by_host(cat, vm="EB_")
        assert [v.vm_name for v in cloud.clusters[0].vms] == ["web_1"]
        assert browse_by_host(cat, vm="eb-") == ()
        [cloud] = browse_by_host(cat, pool="pool-b")
        [web] = cloud.clusters[0].vms
        assert [p.set_id for p in web.points] == ["s4"]
        db_id = make_set("x", vms=("db",)).vms[0].vm_id
        jobs = browse_by_job(cat, vm=db_id)
        assert [(j.job_name, [r.set_id for r in j.runs]) for j in jobs] == [
            ("nightly", ["s1"]),
            ("weekly", ["s3"]),
        ]
        assert all(v.vm_name == "db" for j in jobs for r in j.runs for v in r.vms)
        assert [j.job_name for j in browse_by_job(cat, pool="pool-a", vm="web")] == ["nightly"]
        assert browse_by_job(cat, pool="nowhere") == ()


def test_sets_tree_command_shows_both_views(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from bingobackup.cli.main import app
    from bingobackup.cli.pools_index import remember

    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    _catalog(tmp_path).close()
    remember("pool-a", str(tmp_path / "a"))
    remember("pool-b", str(tmp_path / "b"))
    runner = CliRunner()

    def tree(*args: str) -> list[str]:
        result = runner.invoke(app, ["sets", "tree", *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return [line.strip("│├└─ ") for line in result.output.splitlines()]

    host = tree("--by", "host", "--vm", "WEB")
    assert "cloud demo" in host and "cluster cluster-a" in host
    assert any(line.startswith("web_1 (i-") for line in host)
    assert not any(line.startswith("db (") for line in host)
    points = [line for line in host if " set s" in line]
    assert [p.split(" set ")[1].split()[0] for p in points] == ["s4", "s2", "s1"]
    assert any(line.startswith("/dev/vda vol-web_1-root web_1-root") and "(system)" in line for line in host)

    job = tree("--by", "job", "--pool", "pool-a")
    assert "job nightly" in job and "job weekly" in job and "job offsite" not in job
    assert any(line.startswith("db (") and "failed snapshot timed out" in line for line in job)
    assert "none match" in tree("--vm", "nobody")[0]
    bad = runner.invoke(app, ["sets", "tree", "--by", "disk"])
    assert bad.exit_code != 0 and "use host or job" in bad.output
