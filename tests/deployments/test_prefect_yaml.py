"""deployments/prefect.yaml: Prefect deploys it, and it says what `job create` would make."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import yaml
from prefect.client.orchestration import get_client
from prefect.flows import load_flow_from_entrypoint

from bingobackup.cli.prefect_server import ServerInfo
from bingobackup.specs.job import load_job_spec
from deployments.jobs import BACKUP_FLOW_NAME, job_tags, read_job
from deployments.schedules import schedule_rrule
from deployments.workpool import ensure_work_pool

ROOT = Path(__file__).parents[2]
PREFECT_YAML = ROOT / "deployments" / "prefect.yaml"


def test_prefect_yaml_matches_what_job_create_makes_from_its_spec() -> None:
    [deployment] = yaml.safe_load(PREFECT_YAML.read_text())["deployments"]
    spec = load_job_spec(deployment["parameters"]["spec"])
    assert deployment["name"] == spec.name
    assert deployment["tags"] == job_tags(spec)
    assert deployment["work_pool"]["work_queue_name"] == spec.backup_host
    [schedule] = deployment["schedules"]
    assert schedule["rrule"] == schedule_rrule(spec.schedule, datetime(2025, 1, 1, tzinfo=UTC))
    assert schedule["timezone"] == spec.schedule.timezone
    flow = load_flow_from_entrypoint(str(ROOT / deployment["entrypoint"]))
    assert flow.name == BACKUP_FLOW_NAME


def test_prefect_deploy_accepts_it_and_the_job_commands_see_the_job(prefect_server: ServerInfo) -> None:
    with get_client(sync_client=True) as client:
        ensure_work_pool(client, "bingobackup")
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_server.url,
        "BINGOBACKUP_GIT_URL": "https://git.example.com/ops/bingobackup.git",
        "BINGOBACKUP_GIT_REF": "main",
    }
    command = [
        sys.executable,
        "-m",
        "prefect",
        "--no-prompt",
        "deploy",
        "--prefect-file",
        str(PREFECT_YAML),
        "--all",
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    try:
        job = read_job("nightly-cluster-a")
        assert job.schedule_kind == "weekly" and job.work_queue == "i-XXXXXXXX"
        with get_client(sync_client=True) as client:
            pulled = client.read_deployment(job.deployment_id).pull_steps or []
        assert pulled[0]["prefect.deployments.steps.git_clone"]["repository"].endswith("bingobackup.git")
    finally:
        with get_client(sync_client=True) as client:
            client.delete_deployment(read_job("nightly-cluster-a").deployment_id)
