"""The benchmark's code path on a small image: the image builder is deterministic and realistic,
churn changes what it says, and the measured engine steps back up and export the image
byte for byte. No timing is asserted: `make bench` is where speed is measured."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.engine import new_pool
from benchmarks.image import build_image, churn, scan_nonzero
from benchmarks.machine import MachineInfo, probe, remeasured
from benchmarks.measure import directory_bytes, retire, run_step
from benchmarks.report import write_markdown, write_section
from benchmarks.runner import FlowRun, file_digest
from benchmarks.scale_report import ScalePoint, growth_exponent, growth_verdict, marginal_seconds
from benchmarks.tables import best_against_best, flow_added, flow_added_seconds

SIZE = 24 << 20
PASSPHRASE = "smoke passphrase"


def test_image_is_deterministic_mostly_data_with_holes(tmp_path: Path) -> None:
    first = build_image(tmp_path / "a.raw", SIZE)
    second = build_image(tmp_path / "b.raw", SIZE)
    assert file_digest(first.path) == file_digest(second.path)
    assert 0.5 < first.nonzero_bytes / SIZE < 0.95  # mostly data, with zero runs and holes
    assert first.path.stat().st_blocks * 512 < SIZE  # holes really are holes


def test_engine_steps_back_up_churned_image_and_export_it_byte_for_byte(tmp_path: Path) -> None:
    image = build_image(tmp_path / "disk.raw", SIZE)
    limits = probe(image.path, tmp_path / "probe.tmp")
    assert limits.backup_seconds(read=SIZE, hashed=SIZE, sealed=SIZE) > 0
    again = remeasured(limits, image.path)
    # Measured again, a limit only rises (best over every pass); the other figures stay.
    assert again.backup_seconds(read=SIZE, hashed=SIZE, sealed=SIZE) <= limits.backup_seconds(
        read=SIZE, hashed=SIZE, sealed=SIZE
    )
    assert again.sha256 == limits.sha256 and again.durable_write == limits.durable_write
    assert again.zstd_fast_compress.one >= limits.zstd_fast_compress.one
    pool = tmp_path / "pool"
    new_pool(pool, PASSPHRASE)
    step = {"image": str(image.path), "pool": str(pool), "passphrase": PASSPHRASE, "sparse_aware": False}

    first = run_step("backup", {**step, "set_id": "first"})
    assert first["bytes_read"] == SIZE and first["peak_rss_bytes"] > 0
    stored_after_first = directory_bytes(pool)

    _, regions = scan_nonzero(image.path)
    rewritten = churn(image.path)
    assert rewritten == max(1, round(len(regions) * 0.05)) * (4 << 20)
    second = run_step("backup", {**step, "set_id": "second"})
    assert 0 < second["bytes_sent"] <= rewritten  # only the churned regions are new
    assert directory_bytes(pool) > stored_after_first

    output = tmp_path / "export.raw"
    exported = run_step(
        "export", {"pool": str(pool), "passphrase": PASSPHRASE, "set_id": "second", "output": str(output)}
    )
    assert exported["wall_seconds"] > 0
    assert file_digest(output) == file_digest(image.path)


def test_retired_tree_is_out_of_the_way_and_empty_but_keeps_its_inodes(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    (pool / "chunks" / "ab").mkdir(parents=True)
    for name in ("chunks/ab/one", "chunks/ab/two", "config"):
        (pool / name).write_bytes(b"x" * 5000)
    outside = tmp_path / "image.raw"
    outside.write_bytes(b"y" * 5000)
    (pool / "attached").symlink_to(outside)  # as the simulator attaches volumes
    (pool / "dangling").symlink_to(tmp_path / "gone")
    inodes = {(pool / name).stat().st_ino for name in ("chunks/ab/one", "chunks/ab/two", "config")}

    retire(pool)
    retire(tmp_path / "never-made")  # nothing to retire: no error

    assert not pool.exists()  # the next attempt starts from an empty pool again
    assert outside.stat().st_size == 5000  # what a link points to is left alone
    kept = [path for path in (tmp_path / "retired").rglob("*") if path.is_file() and not path.is_symlink()]
    assert {path.stat().st_ino for path in kept} == inodes
    assert all(path.stat().st_size == 0 and path.stat().st_blocks == 0 for path in kept)

    pool.mkdir()
    retire(pool)  # a second retirement beside the first
    assert len(list((tmp_path / "retired").iterdir())) == 2


def test_what_the_flow_adds_is_read_from_paired_rounds_not_one_lucky_round() -> None:
    flow = FlowRun(
        wall_seconds=3.91,
        engine_job_seconds=3.50,
        peak_rss_bytes=1,
        # the first round warms up; the engine's 3.50 is one lucky round
        flow_rounds=[4.89, 4.37, 4.14, 4.37, 4.63, 3.91],
        engine_rounds=[12.22, 4.26, 4.05, 4.77, 3.50, 3.66],
    )
    assert best_against_best(flow) > 0.11
    # the median of the rounds' differences (0.11, 0.09, -0.40, 1.13, 0.25) over the job's median round
    assert flow_added_seconds(flow) == pytest.approx(4.37 - 4.26)
    assert flow_added(flow) == pytest.approx((4.37 - 4.26) / 4.05)


def test_what_the_flow_adds_leaves_out_the_time_both_jobs_waited_for_the_cloud() -> None:
    # The same flow cost (0.2 s) each round after the warm-up; the simulator's copies took 1-3 s
    # at random, so the rounds' plain differences run from -1.7 to +2.1 s.
    waits_flow, waits_job = [2.0, 1.0, 3.0, 1.2, 2.8, 1.1], [2.0, 2.9, 1.1, 2.7, 1.0, 1.3]
    flow = FlowRun(
        wall_seconds=2.4,
        engine_job_seconds=2.2,
        peak_rss_bytes=1,
        flow_rounds=[1.2 + 2.0 + 5.0] + [1.2 + w + 0.2 for w in waits_flow[1:]],  # a slow warm-up
        engine_rounds=[1.2 + w for w in waits_job],
        flow_cloud_waits=waits_flow,
        engine_cloud_waits=waits_job,
    )
    assert flow_added_seconds(flow) == pytest.approx(0.2)
    assert flow_added(flow) == pytest.approx(0.2 / (1.2 + 1.3))  # the job's median round, waits included


def _point(vms: int, flow: float, engine: float = 0.0, hosts: int = 1, at_once: bool = False) -> ScalePoint:
    return ScalePoint(
        vms=vms,
        disks=vms * 4,
        hosts=hosts,
        at_once=at_once,
        flow_seconds=flow,
        engine_seconds=engine,
        cloud_wait_seconds=0.0,
    )


def test_scale_figures_are_per_disk_per_host_and_growth_is_read_from_added_disks() -> None:
    together = _point(100, flow=40.0, engine=8.0, hosts=2, at_once=True)
    assert together.overhead_per_disk == pytest.approx((40 - 8) / 400)
    assert together.disks_per_second_per_host == pytest.approx(400 / 40 / 2)  # both hosts busy
    # One job after the other: one host busy at a time.
    assert _point(100, flow=40.0, hosts=2).disks_per_second_per_host == pytest.approx(400 / 40)

    # A fixed 3 s per run, then 0.1 s per disk: linear, though a power-law fit says 0.8.
    linear = [_point(n, flow=3 + 0.4 * n) for n in (10, 25, 50)]
    assert marginal_seconds(linear) == [None, pytest.approx(0.1), pytest.approx(0.1)]
    exponent = growth_exponent(linear)
    assert exponent is not None and exponent < 0.9
    assert growth_verdict(linear)[1] is True
    # Each added disk dearer than the last: worse than linear, whatever the fixed cost hides.
    worse = [_point(10, flow=7.0), _point(25, flow=13.0), _point(50, flow=40.0)]
    verdict, passed = growth_verdict(worse)
    assert passed is False and verdict.startswith("worse than linear")
    assert growth_verdict(linear[:1]) == ("not measured (one size only)", None)


def test_scale_section_is_replaced_in_place_and_kept_by_a_full_run(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n## Results\n\nold results\n\n## Notes\n\nhand-written\n")

    write_section(docs, "## Scale", "## Scale\n\nfirst scale rows\n")
    write_section(docs, "## Scale", "## Scale\n\nsecond scale rows\n")
    text = docs.read_text()
    assert text.count("## Scale") == 1 and "second scale rows" in text and "first scale rows" not in text
    assert text.index("## Results") < text.index("## Scale") < text.index("## Notes")
    assert "old results" in text and "hand-written" in text

    info = MachineInfo(cpu_model="cpu", cores=2, python="3.11", libraries={})
    write_markdown(docs, "make bench", info, ["- method"], [], "now", kept=("## Scale",))
    text = docs.read_text()
    assert "old results" not in text  # the full run's own part is rewritten
    assert "second scale rows" in text and "hand-written" in text
    assert text.index("## Method") < text.index("## Scale") < text.index("## Notes")
