"""Every backup option of the guide's tables 2 and 3, honoured by the backup flow.

Run for real: local Prefect server, simulated BingoCloud over HTTP, a pool on disk. Each
test fails if its option is ignored (a VM that should be skipped is snapshotted, a hook
that should abort does not, a limit that should pace does not, …).

Among them, the options whose wiring needs its own proof: the transfer-rate limit, the reconnect time
on the pool side and on the cloud side, the resume buffer, the retry count and interval, the
post-script after a failed VM and hook output in the run's log, the skip condition on a data
disk's datastore, and the parallel-VM limit under load. Outages that would last minutes run
on a virtual clock, so no test waits for the window it proves.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from prefect.states import State
from support.flow import Registered, run_log_into
from support.sim_admin import injected_faults, sim_admin

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
from bingobackup.resources.pools import create_registered_pool
from bingobackup.resources.users import LOCAL_ADMIN
from bingobackup.sparse import data_extents
from bingobackup.specs.job import load_job_spec
from bingobackup.storage.localdir import LocalDirBlobStore
from catalog import Catalog
from flows.backup import job_tag, job_tag_limits, node_tag, run_backup_now, vm_tag
from tasks.backup import prepare_backup

MIB = 1 << 20


def run(registered: Registered, **overrides: Any) -> tuple[State, dict[str, Any]]:
    state = run_backup_now(load_job_spec(registered.spec(**overrides)))
    result = state.result(raise_on_failure=False)
    return state, result if isinstance(result, dict) else {}


def vm_named(registered: Registered, name: str) -> Any:
    return next(i for i in registered.client.describe_instances() if i.name == name)


def snapshots_taken(registered: Registered) -> int:
    return registered.sim.stats().requests.get("CreateSnapshot", 0)


def job_runs(registered: Registered) -> Any:
    with Catalog.open(str(registered.pool_dir), pool=registered.pool) as cat:
        return cat.query("SELECT status, attempts, vms_ok, vms_failed, vms_skipped, errors FROM job_runs")


def data_bytes(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        return sum(length for _, length in data_extents(fd, 0, path.stat().st_size))
    finally:
        os.close(fd)


# -- table 2 -----------------------------------------------------------------------------------


def test_low_datastore_space_skips_the_vm_before_its_snapshot_and_reports_the_free_space(
    registered: Registered,
) -> None:
    vm = vm_named(registered, "linux_local")
    measured = sim_admin(registered.sim, "PUT", f"storages/{vm.storage_id}", {"reserved_used": 0})
    reserved = int(measured["space_max"] * 0.91) - measured["space_used"]
    sim_admin(registered.sim, "PUT", f"storages/{vm.storage_id}", {"reserved_used": reserved})  # 9 % free

    state, summary = run(
        registered,
        content=[{"vm": "linux_local"}],
        options={"skip_if_free_below": {"percent": 10, "gib": 1e6}},
    )

    assert state.is_completed(), state.message
    assert summary["status"] == "skipped" and summary["set_id"] == ""
    (row,) = summary["rows"]
    assert row["status"].startswith("skipped: datastore " + vm.storage_id)
    assert "(9.0 % of" in row["status"]  # the measured free space
    assert snapshots_taken(registered) == 0  # checked before the snapshot
    runs = job_runs(registered)
    assert list(runs["vms_skipped"]) == [1] and list(runs["status"]) == ["skipped"]
    assert "9.0 %" in str(runs["errors"][0])


def test_raw_disk_vm_is_skipped_online_and_backed_up_powered_off_then_started_again(
    registered: Registered,
) -> None:
    vm = vm_named(registered, "raw_disk_vm")
    online, summary = run(registered, content=[{"vm": "raw_disk_vm"}])
    assert online.is_completed(), online.message
    assert "raw or block-device" in summary["rows"][0]["status"] and snapshots_taken(registered) == 0

    offline, summary = run(registered, content=[{"vm": "raw_disk_vm"}], options={"power_off": True})

    assert offline.is_completed(), offline.message
    assert summary["status"] == "ok" and summary["rows"][0]["status"] == "ok"
    stats = registered.sim.stats()
    volumes = [d.volume_id for d in vm.block_devices]
    assert volumes and all(stats.instance_state_at_snapshot[v] == "stopped" for v in volumes)
    assert stats.requests["StopInstances"] == 1 and stats.requests["StartInstances"] == 1
    assert registered.client.get_instance(vm.instance_id).state.name == "running"


def test_server_side_dedup_is_refused_for_a_standard_pool_before_any_snapshot(
    registered: Registered, tmp_path: Path
) -> None:
    from tasks.blocks import PrefectRegistryStore

    standard = f"{registered.pool}-std"
    create_registered_pool(
        PrefectRegistryStore(), LOCAL_ADMIN, name=standard, kind="standard", location=tmp_path / "standard"
    )
    state, _ = run(
        registered, pool=standard, content=[{"vm": "linux_local"}], options={"dedup_mode": "server"}
    )

    assert state.is_failed()
    assert "server-side dedup" in str(state.message) and f"'{standard}' is a standard pool" in str(
        state.message
    )
    assert snapshots_taken(registered) == 0


def test_compression_and_dedup_mode_change_what_is_sent_and_stored(
    registered: Registered, tmp_path: Path
) -> None:
    from tasks.blocks import PrefectRegistryStore

    vm = [{"vm": "linux_local"}]
    _, fast = run(registered, content=vm, options={"compression": "fast"})
    _, server = run(registered, content=vm, options={"dedup_mode": "server"})
    plain_pool = f"{registered.pool}-plain"
    create_registered_pool(
        PrefectRegistryStore(), LOCAL_ADMIN, name=plain_pool, kind="standard", location=tmp_path / "plain"
    )
    _, plain = run(registered, pool=plain_pool, content=vm, options={"compression": "none"})

    (fast_row,), (server_row,), (plain_row,) = fast["rows"], server["rows"], plain["rows"]
    assert fast_row["stored MiB"] < 0.9 * fast_row["sent MiB"]  # compressed
    assert plain_row["stored MiB"] >= plain_row["sent MiB"] > 0  # stored as sent
    # Server-side dedup sends every chunk and the pool drops the ones it holds (bytes sent
    # reported); agent-side would have sent nothing (test_backup_flow).
    assert server_row["sent MiB"] >= 0.9 * server_row["read MiB"] > 0
    assert server_row["stored MiB"] < 0.1


# -- table 3 -----------------------------------------------------------------------------------


def test_read_limit_paces_the_backup(registered: Registered) -> None:
    rate = 6 * MIB
    started = time.monotonic()
    state, summary = run(
        registered, content=[{"vm": "linux_local"}], options={"read_limits": [{"rate": "6MiB/s"}]}
    )
    elapsed = time.monotonic() - started

    assert state.is_completed(), state.message
    (row,) = summary["rows"]
    read = row["read MiB"] * MIB
    assert read > 16 * MIB
    # One burst (4 MiB) is free, the rest cannot go faster than the limit; a busy machine
    # only makes it slower, so the lower bound is the robust check (20 MiB → ≥ 3.3 s).
    assert row["seconds"] >= (read - 4 * MIB) / rate * 0.95
    assert elapsed < (read / rate) * 4 + 60


def test_precondition_failure_aborts_before_any_snapshot_and_post_script_is_told(
    registered: Registered, tmp_path: Path
) -> None:
    told = tmp_path / "post.env"
    options = {
        "precondition": {"command": "echo 'maintenance window'; exit 1", "timeout_seconds": 30},
        "pre_script": f"touch {tmp_path / 'pre-ran'}",
        "post_script": f'echo "$BINGOBACKUP_JOB $BINGOBACKUP_STATUS $BINGOBACKUP_ERROR" > {told}',
    }
    before = registered.sim.stats().requests
    state, _ = run(registered, content=[{"vm": "linux_local"}], options=options)

    assert state.is_failed()
    assert "precondition" in str(state.message) and "maintenance window" in str(state.message)
    assert registered.sim.stats().requests == before  # the cloud was not even asked
    assert not (tmp_path / "pre-ran").exists()
    job, status, *error = told.read_text().split()
    assert (job, status) == (f"job-{registered.cloud}", "failed") and "precondition" in " ".join(error)


def test_pre_and_post_scripts_run_around_the_backup_with_its_outcome(
    registered: Registered, tmp_path: Path
) -> None:
    pre, post = tmp_path / "pre.env", tmp_path / "post.env"
    requests = f"{registered.sim.admin_url}/stats"
    options = {
        # The pre-script runs before any resource is touched: no snapshot yet.
        "pre_script": f"{sys.executable} -c \"import json,urllib.request;print(json.load(urllib.request.urlopen('{requests}'))"
        f"['requests'].get('CreateSnapshot', 0))\" > {pre}",
        "post_script": f'echo "$BINGOBACKUP_STATUS $BINGOBACKUP_SET_ID $BINGOBACKUP_VMS" > {post}',
    }
    state, summary = run(registered, content=[{"vm": "linux_local"}], options=options)

    assert state.is_completed(), state.message
    assert pre.read_text().strip() == "0"
    assert post.read_text().split() == ["ok", summary["set_id"], "linux_local"]


def test_retry_reruns_only_the_failed_vm_and_the_report_shows_each_attempt(
    registered: Registered, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tasks.backup

    real, calls = tasks.backup.snapshot_disks, []

    def first_snapshot_of_linux_local_fails(client, job, vm, taken):  # type: ignore[no-untyped-def]
        calls.append(vm.name)
        if vm.name == "linux_local" and calls.count("linux_local") == 1:
            raise RuntimeError("snapshot service busy")
        return real(client, job, vm, taken)

    monkeypatch.setattr(tasks.backup, "snapshot_disks", first_snapshot_of_linux_local_fails)
    state, summary = run(
        registered,
        content=[{"vm": "linux_local"}, {"vm": "linux_mul_nic"}],
        options={"retry": {"count": 2, "interval_minutes": 0}},
    )

    assert state.is_completed(), state.message
    assert sorted(calls) == ["linux_local", "linux_local", "linux_mul_nic"]  # only the failed VM again
    rows = {row["VM"].split(" ")[0]: row for row in summary["rows"]}
    assert rows["linux_local"]["attempts"] == 2
    assert rows["linux_local"]["history"] == "#1 failed (snapshot service busy); #2 ok"
    assert rows["linux_mul_nic"]["history"] == "#1 ok"
    runs = job_runs(registered)
    assert list(runs["attempts"]) == [2] and list(runs["vms_ok"]) == [2]
    assert "attempt 1: snapshot service busy" in str(runs["errors"][0])


def test_a_pool_outage_and_dropped_cloud_connections_inside_the_reconnect_time_resume(
    registered: Registered, monkeypatch: pytest.MonkeyPatch, small_packs: None
) -> None:
    """The pool's storage fails for a while after some chunks are stored and the cloud drops
    connections; the disk continues where it was (each data byte read once)."""
    real_write = LocalDirBlobStore._write_all
    writes, failures = [0], [0]

    def link_down_for_a_while(self: LocalDirBlobStore, fd: int, parts: tuple) -> None:
        writes[0] += 1
        if writes[0] > 3 and failures[0] < 5:
            failures[0] += 1
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_write(self, fd, parts)

    monkeypatch.setattr(LocalDirBlobStore, "_write_all", link_down_for_a_while)
    with injected_faults(registered.sim, {"drop_rate": 0.2, "seed": 3, "actions": ["DescribeVolumes"]}):
        state, summary = run(registered, content=[{"vm": "linux_local"}], options={"reconnect_minutes": 1})

    assert state.is_completed(), state.message
    assert failures[0] == 5
    vm = vm_named(registered, "linux_local")
    (volume,) = [d.volume_id for d in vm.block_devices]
    (row,) = summary["rows"]
    assert row["read MiB"] == round(data_bytes(registered.volume_file(volume)) / MIB, 1)


# -- parallel limits, checked against the simulator's record of concurrent attaches ------------
# cluster-b: web-b-01 on node-b1, db-b-01 (2 disks) and debian-tools on node-b2. All three VMs
# start at once unless a limit holds them back.


def test_parallel_vms_per_job_limit_holds(registered: Registered) -> None:
    options = {"parallel_vms": 1, "parallel_disks_per_vm": 1, "retry": {"count": 0, "interval_minutes": 0}}
    state, result = run(registered, cluster="cluster-b", options=options)
    assert state.is_completed(), state.message
    assert len(result["rows"]) == 3
    host = registered.hosts["cluster-b"]
    assert registered.sim.stats().max_attached_per_host[host] == 1


def test_parallel_vms_per_node_limit_holds(registered: Registered) -> None:
    options = {
        "parallel_vms": 3,
        "parallel_vms_per_node": 1,
        "parallel_disks_per_vm": 1,
        "retry": {"count": 0, "interval_minutes": 0},
    }
    state, result = run(registered, cluster="cluster-b", options=options)
    assert state.is_completed(), state.message
    assert len(result["rows"]) == 3
    (node,) = {vm_named(registered, n).node_id for n in ("db-b-01", "debian-tools")}
    assert registered.sim.stats().max_attached_per_source_node[node] == 1


@pytest.mark.parametrize(
    ("options", "binding"),
    [
        ({"parallel_vms": 3}, set()),  # no limit below its contenders: no task run is tagged
        ({}, {"job"}),  # the default 2 parallel VMs hold back cluster-b's third VM
        ({"parallel_vms": 3, "parallel_vms_per_node": 1}, {"node-b2"}),  # node-b1 holds one VM
        ({"parallel_vms": 3, "parallel_disks_per_vm": 1}, {"db-b-01"}),  # the only 2-disk VM
    ],
)
def test_only_limits_that_can_hold_a_task_run_back_tag_it(
    registered: Registered, options: dict[str, Any], binding: set[str]
) -> None:
    # A job runs once at a time, so a limit of N slots can only bind when more than N of the
    # run's own VMs (or disks) share its tag; the others would cost a slot lease per task run.
    spec = load_job_spec(registered.spec(cluster="cluster-b", options=options))
    job = prepare_backup.fn(spec, None)
    limits = job_tag_limits(job)
    names = {job_tag(spec.name): "job"}
    for vm in job.vms:
        names[node_tag(spec.name, vm.node_id)] = vm.node_id.partition("@")[0]
        names[vm_tag(spec.name, vm.instance_id)] = vm.name
    assert set(limits.limits) == set(names)  # every limit is still set on the server
    assert {names[tag] for tag in limits.binding} == binding
    assert limits.tags(*names) == [tag for tag in names if tag in limits.binding]


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
