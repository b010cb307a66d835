"""Backup options whose wiring into the flow needs its own proof (guide tables 2 and 3).

Each test fails if the flow ignores its option: the transfer-rate limit, the reconnect time
on the pool side and on the cloud side, the resume buffer, the retry count and interval, the
post-script after a failed VM and hook output in the run's log, the skip condition on a data
disk's datastore, and the parallel-VM limit under load. Outages that would last minutes run
on a virtual clock, so no test waits for the window it proves.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flow_support import Registered, run_log_into
from sim_admin import injected_faults, sim_admin
from test_backup_options import MIB, job_runs, run, snapshots_taken, vm_named

import bingobackup.cloud.client
import flows.backup
import tasks.backup
from bingobackup.backup.job import BackupJob
from bingobackup.backup.resume import ResumingSink
from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.models import Snapshot
from bingobackup.cloud.waiters import wait_for_volume
from bingobackup.format.config import DEFAULT_CHUNK_SIZE
from bingobackup.jobs.linkretry import LinkRetry
from bingobackup.resources.discovery import ResolvedVm
from bingobackup.storage.localdir import LocalDirBlobStore

BURST = 4 * MIB  # the rate limiter's bucket: one burst is free (mover/ratelimit.py)


class VirtualClock:
    """A monotonic clock that only `sleep` moves: a minutes-long window passes at once."""

    def __init__(self) -> None:
        self._now = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


def _vm_row(summary: dict[str, Any], name: str) -> dict[str, Any]:
    return next(row for row in summary["rows"] if row["VM"].startswith(f"{name} "))


def _always_fails_to_snapshot(monkeypatch: pytest.MonkeyPatch, vm_name: str, error: str) -> list[float]:
    """Every snapshot of `vm_name` fails with `error`; returns the monotonic times of each try."""
    real = tasks.backup.snapshot_disks
    tries: list[float] = []

    def snapshot_disks(
        client: BingoCloudClient, job: BackupJob, vm: ResolvedVm, taken: dict[str, Snapshot]
    ) -> None:
        if vm.name != vm_name:
            return real(client, job, vm, taken)
        tries.append(time.monotonic())
        raise RuntimeError(error)

    monkeypatch.setattr(tasks.backup, "snapshot_disks", snapshot_disks)
    return tries


# -- transfer-rate limit -----------------------------------------------------------------------


def test_transfer_limit_paces_the_bytes_sent_to_the_pool(registered: Registered) -> None:
    rate = 2 * MIB
    started = time.monotonic()
    state, summary = run(
        registered, content=[{"vm": "linux_local"}], options={"transfer_limits": [{"rate": "2MiB/s"}]}
    )
    elapsed = time.monotonic() - started

    assert state.is_completed(), state.message
    (row,) = summary["rows"]
    stored = row["stored MiB"] * MIB
    # The limit counts what the pool stores (after compression and encryption): a first
    # backup of this VM sends ~76 MiB and stores ~11.5 MiB.
    assert stored > 8 * MIB and row["sent MiB"] * MIB > 4 * stored
    # Unlimited, this VM takes ~1 s; at 2 MiB/s the bytes after the free burst need ≥ 3.5 s. A
    # busy machine only makes it slower, hence a firm lower bound and a loose upper one.
    assert row["seconds"] >= (stored - BURST) / rate * 0.95
    assert elapsed < stored / rate * 4 + 60


# -- reconnect time and resume buffer ----------------------------------------------------------


@pytest.fixture
def pool_link_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every write to the pool's storage fails as a lost NFS/iSCSI link does (EIO)."""

    put, write_all, locking = LocalDirBlobStore.put, LocalDirBlobStore._write_all, threading.local()

    def tracked_put(self: LocalDirBlobStore, key: str, *args: Any, **kwargs: Any) -> Any:
        locking.key = key
        return put(self, key, *args, **kwargs)

    def link_down(self: LocalDirBlobStore, fd: int, parts: tuple) -> None:
        # The pool's writer lock (taken as the disk's writer opens) went through before the
        # link dropped: the chunks meet the lost link.
        if getattr(locking, "key", "").startswith("locks/"):
            return write_all(self, fd, parts)
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(LocalDirBlobStore, "put", tracked_put)
    monkeypatch.setattr(LocalDirBlobStore, "_write_all", link_down)
    yield


def test_pool_link_down_longer_than_the_reconnect_time_fails_the_vm_naming_it(
    registered: Registered, monkeypatch: pytest.MonkeyPatch, pool_link_down: None, small_packs: None
) -> None:
    clock, windows, sinks = VirtualClock(), [], []

    def link_retry(**kwargs: Any) -> LinkRetry:
        windows.append(kwargs["window_seconds"])
        return LinkRetry(clock=clock, sleep=clock.sleep, **kwargs)

    class RecordedSink(ResumingSink):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            sinks.append(self)

    monkeypatch.setattr(flows.backup, "LinkRetry", link_retry)
    monkeypatch.setattr(flows.backup, "ResumingSink", RecordedSink)
    channels, buffer_mib = 2, 5
    with engine_lines_shipped() as shipped:
        state, summary = run(
            registered,
            content=[{"vm": "linux_local"}],
            options={"reconnect_minutes": 1, "channels": channels, "resume_buffer_mib": buffer_mib},
        )

    assert state.is_failed()
    status = _vm_row(summary, "linux_local")["status"]
    assert status.startswith("failed: disk vol-") and "reconnect time of 1 min" in status
    assert "Input/output error" in status and "reconnect time of 1 min" in str(state.message)
    assert windows == [60.0] and clock() >= 55.0  # the spec's minute, ridden out on the virtual clock
    # While the link was down each channel held its one unacknowledged chunk, no more: the
    # job's memory bound (channels × resume buffer) holds because a chunk fits the buffer.
    (sink,) = sinks
    assert sink.buffer_bytes == buffer_mib * MIB
    assert 0 < sink.peak_held_bytes <= channels * DEFAULT_CHUNK_SIZE <= channels * sink.buffer_bytes
    # The channels' lines about the lost link, logged in the pipeline's own threads, join the
    # run's log (the UI's Logs tab) like the run's other lines.
    lost = [run_id for message, run_id in shipped if "link to the pool lost" in message]
    assert lost and set(lost) == {str(state.state_details.flow_run_id)}, shipped


@contextmanager
def engine_lines_shipped() -> Iterator[list[tuple[str, str | None]]]:
    """(message, flow run id) of each engine (`bingobackup.*`) line as Prefect's API log handler
    would ship it (this session keeps run logs local); None for a line it finds no run for."""
    from prefect.exceptions import MissingContextError
    from prefect.logging.handlers import APILogHandler

    shipped: list[tuple[str, str | None]] = []

    class Shipped(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                run_id = APILogHandler().prepare(record)["flow_run_id"]
            except MissingContextError:
                run_id = None
            shipped.append((record.getMessage(), run_id))

    engine, handler = logging.getLogger("bingobackup"), Shipped()
    engine.addHandler(handler)
    try:
        yield shipped
    finally:
        engine.removeHandler(handler)


def test_resume_buffer_smaller_than_a_chunk_is_refused_before_any_snapshot(registered: Registered) -> None:
    state, _ = run(registered, content=[{"vm": "linux_local"}], options={"resume_buffer_mib": 1})

    assert state.is_failed()
    message = str(state.message)
    assert "resume buffer of 1 MiB per channel cannot hold one chunk" in message
    assert "resume_buffer_mib to at least 4" in message
    assert snapshots_taken(registered) == 0


def test_cloud_outage_longer_than_the_reconnect_time_fails_the_vm_after_that_window(
    registered: Registered, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CreateSnapshot answers InternalError for ever: the job's client retries for the
    reconnect time (2 min on a virtual clock, longer than the client's 1 min default)."""
    clock = VirtualClock()
    virtual_time = types.SimpleNamespace(monotonic=clock, sleep=clock.sleep)
    monkeypatch.setattr(bingobackup.cloud.client, "time", virtual_time)
    with injected_faults(
        registered.sim, {"error_rate": {"CreateSnapshot": 1.0}, "actions": ["CreateSnapshot"]}
    ):
        state, summary = run(registered, content=[{"vm": "linux_local"}], options={"reconnect_minutes": 2})

    assert state.is_failed()
    status = _vm_row(summary, "linux_local")["status"]
    assert "CreateSnapshot failed: InternalError" in status
    gave_up_after = float(status.split(" attempts over ")[1].split(" s")[0])
    assert 110 < gave_up_after <= 120  # the last pause (≤ 5 s) would have crossed 2 min
    assert snapshots_taken(registered) > 10  # retried all along, not given up at the first error


# -- retry ------------------------------------------------------------------------------------


def test_a_vm_that_always_fails_is_tried_count_plus_one_times_interval_apart(
    registered: Registered, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tries = _always_fails_to_snapshot(monkeypatch, "linux_local", "snapshot service down")
    interval_minutes = 0.02  # 1.2 s
    state, summary = run(
        registered,
        content=[{"vm": "linux_local"}],
        options={"retry": {"count": 1, "interval_minutes": interval_minutes}},
    )

    assert state.is_failed()
    assert "failed after 2 attempt(s)" in str(state.message)
    row = _vm_row(summary, "linux_local")
    assert row["attempts"] == 2 and len(tries) == 2
    assert row["history"] == "#1 failed (snapshot service down); #2 failed (snapshot service down)"
    assert tries[1] - tries[0] >= interval_minutes * 60  # the interval was waited between attempts
    assert "retrying 1 failed VM(s) in 1.2 s: linux_local" in caplog.text  # the operator sees the wait
    runs = job_runs(registered)
    assert list(runs["status"]) == ["failed"] and list(runs["attempts"]) == [2]
    assert [e["message"] for e in runs["errors"][0]] == [
        "attempt 1: snapshot service down",
        "attempt 2: snapshot service down",
    ]


# -- hooks ------------------------------------------------------------------------------------


def test_post_script_after_a_failed_vm_is_told_why_and_hook_output_reaches_the_run_log(
    registered: Registered, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _always_fails_to_snapshot(monkeypatch, "linux_local", "volume is locked")
    told = tmp_path / "post.env"
    options = {
        "precondition": "echo precondition checked the window",
        "pre_script": "echo pre-script quiesced the database",
        "post_script": f'echo "$BINGOBACKUP_STATUS" > {told}; echo "$BINGOBACKUP_ERROR" >> {told}; '
        "echo post-script paged the operator",
    }
    with run_log_into(caplog):
        state, _ = run(registered, content=[{"vm": "linux_local"}], options=options)

    assert state.is_failed()
    status, error = told.read_text().splitlines()
    assert status == "failed"
    assert "linux_local: volume is locked" in error
    run_id = str(state.state_details.flow_run_id)
    lines = {r.getMessage() for r in caplog.records if getattr(r, "flow_run_id", None) == run_id}
    assert {
        "precondition | precondition checked the window",
        "pre-script | pre-script quiesced the database",
        "post-script | post-script paged the operator",
    } <= lines


# -- skip condition and parallel limit under load ----------------------------------------------


def test_a_full_datastore_holding_only_a_data_disk_skips_the_vm_before_its_snapshot(
    registered: Registered,
) -> None:
    """linux_local lives on sto-a-local; its new data disk sits on sto-a-ceph, which is full."""
    client, vm = registered.client, vm_named(registered, "linux_local")
    full = "sto-a-ceph"
    assert vm.storage_id != full
    data = client.create_volume(size_bytes=64 * MIB, storage_id=full, name="linux_local-data")
    wait_for_volume(client, data.volume_id, "available", timeout=30)
    client.attach_volume(data.volume_id, vm.instance_id, "/dev/vdb")
    wait_for_volume(client, data.volume_id, "in-use", timeout=30)
    measured = sim_admin(registered.sim, "PUT", f"storages/{full}", {"reserved_used": 0})
    reserved = int(measured["space_max"] * 0.95) - measured["space_used"]
    sim_admin(registered.sim, "PUT", f"storages/{full}", {"reserved_used": reserved})  # 5 % free

    state, summary = run(
        registered,
        content=[{"vm": "linux_local", "disks": "all"}],
        options={"skip_if_free_below": {"percent": 10}},
    )

    assert state.is_completed(), state.message
    (row,) = summary["rows"]
    assert row["status"].startswith(f"skipped: datastore {full} has ")
    assert "(5.0 % of" in row["status"]
    assert snapshots_taken(registered) == 0


def test_parallel_vms_limit_of_two_over_four_vms_peaks_at_exactly_two(registered: Registered) -> None:
    names = ["linux_local", "linux_mul_nic", "centos6-legacy", "win2019-ad"]
    options = {"parallel_vms": 2, "parallel_vms_per_node": 2, "parallel_disks_per_vm": 1}
    state, summary = run(registered, content=[{"vm": n} for n in names], options=options)

    assert state.is_completed(), state.message
    assert sorted(row["status"] for row in summary["rows"]) == ["ok"] * 4
    host = registered.hosts["cluster-a"]
    # Two VMs at a time, each with its one disk on the backup host: the limit is used, not exceeded.
    assert registered.sim.stats().max_attached_per_host[host] == 2
