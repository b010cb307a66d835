"""The cloud's keys and the pool's passphrase never reach what operators and analysts read: the
run's logs and console output, its state message, parameters and artifacts, the catalog, the
pool's files, also on a run whose requests are dropped and retried and whose VMs are skipped;
nor, with keys and passphrases of their own, the lifecycle's commands and runs (prune, sets
delete, gc, verify: console, artifacts, the log lines the Prefect API holds) or the errors of
a wrong Secret Key or passphrase. Each output is searched for every secret as typed and in
hex, base64 and quoted forms (support/secrets.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowFilter,
    FlowFilterId,
    FlowRunFilter,
    FlowRunFilterStartTime,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.logging.handlers import APILogHandler, APILogWorker
from prefect.settings import (
    PREFECT_LOGGING_TO_API_ENABLED,
    PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW,
    temporary_settings,
)
from support.cli import runner
from support.flow import POOL_PASSPHRASE, Registered, local_dedup_pool, register_cloud_and_pool, run_log_into
from support.secrets import leaks as find_leaks
from support.sim_admin import injected_faults
from support.testkeys import ACCESS_KEY, SECRET_KEY

from bingobackup.cli.main import app
from bingobackup.cli.prefect_server import ServerInfo
from bingobackup.cloud import BingoCloudClient, CloudAuthError
from bingobackup.sim.server import start_simulator
from bingobackup.specs.job import load_job_spec
from flows.backup import run_backup_now
from flows.gc import collect_garbage
from flows.verify import verify

SECRETS = {"Access Key": ACCESS_KEY, "Secret Key": SECRET_KEY, "pool passphrase": POOL_PASSPHRASE}


def leaks(where: str, text: str) -> list[str]:
    return find_leaks(where, text, SECRETS)


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


# Distinctive values of this test's own: found in an output, they can only have leaked from here.
OWN_ACCESS_KEY = "AKLEAKSCAN000042"
OWN_SECRET_KEY = "sk-Qv7Lx2-never-print-this-key-9Tz4"
OWN_PASSPHRASE = "pp Hb3 never-print-this-passphrase 6Wq"
WRONG_SECRET_KEY = "sk-Wr0ng-typed-secret-key-4Kd8Ue"
WRONG_PASSPHRASE = "pp Wr0ng typed passphrase 2Mv5Rt"
OWN_SECRETS = {
    "Access Key": OWN_ACCESS_KEY,
    "Secret Key": OWN_SECRET_KEY,
    "pool passphrase": OWN_PASSPHRASE,
    "mistyped Secret Key": WRONG_SECRET_KEY,
    "mistyped passphrase": WRONG_PASSPHRASE,
}


@pytest.fixture
def own_keys(prefect_server: ServerInfo, tmp_path: Path) -> Iterator[Registered]:
    """A simulated cloud with this test's keys, registered with an encrypted pool of its passphrase."""
    sim = start_simulator(tmp_path / "sim-state", OWN_ACCESS_KEY, OWN_SECRET_KEY, scenario="demo")
    try:
        client = BingoCloudClient(sim.endpoint, OWN_ACCESS_KEY, OWN_SECRET_KEY, retry_window_seconds=5.0)
        pool_dir = tmp_path / "pool"
        yield register_cloud_and_pool(
            sim, client, pool_dir, local_dedup_pool(pool_dir, OWN_PASSPHRASE), secret_key=OWN_SECRET_KEY
        )
    finally:
        sim.stop()


@contextmanager
def api_run_logs() -> Iterator[None]:
    """Run logs shipped to the Prefect API as a worker's runs ship them, the engine's lines with
    them (LOGGING_ENVIRONMENT's PREFECT_LOGGING_EXTRA_LOGGERS, set up when Prefect is imported
    by a command, not by this test process); drained before the block ends."""
    engine = logging.getLogger("bingobackup")
    handler = APILogHandler(logging.INFO)  # as shipped (the simulator's DEBUG lines are not)
    engine.addHandler(handler)
    try:
        with temporary_settings(
            updates={PREFECT_LOGGING_TO_API_ENABLED: True, PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore"}
        ):
            yield
            APILogWorker.drain_all(timeout=30)
    finally:
        engine.removeHandler(handler)


def _flow_runs_since(started: datetime) -> list[FlowRun]:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=started))
        )


def _cli(*args: str) -> str:
    """A command's console output and, when it stops with an error, that error's line."""
    result = runner.invoke(app, list(args))
    return f"{result.output}\n{result.exception or ''}"


def test_lifecycle_commands_runs_and_key_errors_keep_keys_and_passphrases_hidden(
    own_keys: Registered,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="prefect")
    caplog.set_level(logging.DEBUG, logger="bingobackup")
    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path / "home"))
    pool = own_keys.pool
    started = datetime.now(UTC)
    spec = load_job_spec(own_keys.spec(content=[{"vm": "linux_local"}]))
    outputs: dict[str, str] = {}
    with run_log_into(caplog), api_run_logs():
        sets = []
        for _ in range(3):
            state = run_backup_now(spec)
            sets.append(state.result()["set_id"])
        outputs["sets delete"] = _cli("sets", "delete", sets[0], "--pool", pool, "--yes")
        outputs["pool set-retention"] = _cli("pool", "set-retention", pool, "--keep-last", "1")
        outputs["prune"] = _cli("prune", "--pool", pool, "--yes")  # through the prune flow
        outputs["gc"] = _cli("gc", "--pool", pool)
        gc_state = collect_garbage(pool=pool, return_state=True)
        outputs["verify"] = _cli("verify", "--pool", pool)
        verify_state = verify(pool=pool, return_state=True)
    assert f"backup set {sets[0]} deleted" in outputs["sets delete"], outputs["sets delete"]
    assert f"1 set(s) deleted: {sets[1]}" in outputs["prune"], outputs["prune"]
    assert "blobs freed" in outputs["gc"] and gc_state.is_completed(), outputs["gc"]
    assert "damaged" not in outputs["verify"].lower() and verify_state.is_completed(), outputs["verify"]

    # A mistyped Secret Key (to the client and to `cloud register`) and passphrase (to verify).
    try:
        list(BingoCloudClient(own_keys.sim.endpoint, OWN_ACCESS_KEY, WRONG_SECRET_KEY).describe_clusters())
    except CloudAuthError as error:
        outputs["the wrong Secret Key's error"] = str(error)
    outputs["cloud register with a wrong Secret Key"] = _cli(
        "cloud", "register", "--name", "mistyped", "--address", "127.0.0.1",
        "--port", str(own_keys.sim.port), "--access-key", OWN_ACCESS_KEY,
        "--secret-key", WRONG_SECRET_KEY, "--backup-host", own_keys.hosts["cluster-a"],
    )  # fmt: skip
    monkeypatch.setenv("BINGOBACKUP_POOL_PASSPHRASE", WRONG_PASSPHRASE)
    outputs["verify with a wrong passphrase"] = _cli("verify", "--pool", str(own_keys.pool_dir))
    assert "SignatureDoesNotMatch" in outputs["the wrong Secret Key's error"]
    assert "refused the credentials" in outputs["cloud register with a wrong Secret Key"]
    assert "passphrase" in outputs["verify with a wrong passphrase"].lower()

    runs = _flow_runs_since(started)
    with get_client(sync_client=True) as client:
        ids = [r.id for r in runs]
        flows = client.read_flows(flow_filter=FlowFilter(id=FlowFilterId(any_=[r.flow_id for r in runs])))
        assert {f.name for f in flows} >= {"bingobackup-prune", "bingobackup-gc", "bingobackup-verify"}
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids))
        )
        api_log = [
            log.message
            for log in client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
        ]
    assert {a.key for a in artifacts} >= {"gc-summary", "verify-summary"}, {a.key for a in artifacts}
    assert any("linux_local" in m and "finished" in m for m in api_log), api_log  # the per-VM lines

    found = [
        leak for name, text in outputs.items() for leak in find_leaks(f"the {name} output", text, OWN_SECRETS)
    ]
    found += find_leaks("the logs", caplog.text, OWN_SECRETS)
    found += find_leaks("the Prefect API's run logs", "\n".join(api_log), OWN_SECRETS)
    captured = capfd.readouterr()
    found += find_leaks("the console output", captured.out + captured.err, OWN_SECRETS)
    for run in runs:
        found += find_leaks(
            f"run {run.name}'s state, parameters", f"{run.state!r} {run.parameters!r}", OWN_SECRETS
        )
    found += find_leaks(
        "the artifacts", "\n".join(f"{a.data!r} {a.description!r}" for a in artifacts), OWN_SECRETS
    )
    for root in (own_keys.pool_dir, tmp_path / "home"):
        for path in (p for p in root.rglob("*") if p.is_file()):
            found += find_leaks(
                str(path.relative_to(tmp_path)), path.read_bytes().decode("latin-1"), OWN_SECRETS
            )
    assert not found, found
