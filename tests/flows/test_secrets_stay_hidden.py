"""The cloud's keys and the pool's passphrase never reach what operators and analysts read: the
run's logs and console output, its state message, parameters and artifacts, the catalog, the
pool's files, also on a run whose requests are dropped and retried and whose VMs are skipped."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from support.flow import POOL_PASSPHRASE, Registered, run_log_into
from support.sim_admin import injected_faults
from support.testkeys import ACCESS_KEY, SECRET_KEY

from bingobackup.specs.job import load_job_spec
from flows.backup import run_backup_now

SECRETS = {"Access Key": ACCESS_KEY, "Secret Key": SECRET_KEY, "pool passphrase": POOL_PASSPHRASE}


def leaks(where: str, text: str) -> list[str]:
    return [f"the {name} is in {where}" for name, value in SECRETS.items() if value in text]


def test_no_key_or_passphrase_reaches_logs_artifacts_catalog_or_pool_files(
    registered: Registered, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    # Every level: a key in a debug line is as leaked as one in an error.
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="prefect")
    caplog.set_level(logging.DEBUG, logger="bingobackup")  # the engine's lines of the run's log
    # Dropped and throttled requests make the client retry and log each failed attempt;
    # cluster-a's raw-disk VM is skipped without power_off, so the run also writes a reason.
    with (
        run_log_into(caplog),
        injected_faults(registered.sim, {"drop_rate": 0.2, "throttle_rate": 0.1, "seed": 11}),
    ):
        state = run_backup_now(
            load_job_spec(registered.spec(options={"retry": {"count": 1, "interval_minutes": 0}}))
        )
    result = state.result(raise_on_failure=False)
    assert isinstance(result, dict) and result["set_id"], state.message
    statuses = [str(row["status"]).split(":")[0] for row in result["rows"]]
    assert "ok" in statuses and set(statuses) != {"ok"}, statuses  # both paths were exercised
    assert "failed (attempt 1)" in caplog.text  # the retries were logged
    # So were the engine's lines for each VM, disk, snapshot and volume (the run's Logs tab).
    for line in ("started (attempt 1)", "finished: read", "backed up: read", "created from snapshot"):
        assert line in caplog.text, line
    assert "snapshot snap-" in caplog.text and "removed" in caplog.text

    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    assert artifacts, "the run made no artifacts to check"
    found = leaks("the logs", caplog.text)
    captured = capfd.readouterr()
    found += leaks("the console output", captured.out + captured.err)
    found += leaks("the state message", str(state.message))
    found += leaks("the run's parameters", repr(flow_run.parameters))
    found += leaks("the artifacts", "\n".join(f"{a.data!r} {a.description!r}" for a in artifacts))
    found += leaks("the run result", repr(result))
    pool_files = [p for p in Path(registered.pool_dir).rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in pool_files)
    for path in pool_files:
        found += leaks(str(path.relative_to(registered.pool_dir)), path.read_bytes().decode("latin-1"))
    assert not found, found
