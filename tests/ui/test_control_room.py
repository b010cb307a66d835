"""The operator's control room in a real browser (issue 24): Playwright drives Debian's Chromium
against the session's Prefect server, with a backup job and a restore job deployed and the
backup host's worker running in the background, as `make demo` leaves them.

Screenshots go to the test's folder; with BINGOBACKUP_UI_SCREENSHOTS=DIR (`make
ui-screenshots`) they are also copied there (docs/ui, for the README's "Operating it").
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from support.flow import Registered

from bingobackup.cli.prefect_server import ServerInfo
from bingobackup.cli.worker import start_background_worker, stop_background_workers
from bingobackup.specs.job import load_job_spec
from bingobackup.specs.restore import load_restore_spec
from deployments.jobs import create_job, delete_job
from deployments.kinds import restore_code
from deployments.runs import wait_for_run

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `make chromium` (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(30_000)
        try:
            yield page
        finally:
            browser.close()


def _shot(page: object, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))  # type: ignore[attr-defined]
    target = os.environ.get("BINGOBACKUP_UI_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


def test_operator_runs_a_backup_and_resumes_a_restore_in_the_ui(
    registered: Registered,
    prefect_server: ServerInfo,
    browser_page: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    job_pool = f"bb-ui-{uuid.uuid4().hex[:8]}"  # no other test's worker runs these jobs
    monkeypatch.setenv("BINGOBACKUP_WORK_POOL", job_pool)
    ui = prefect_server.ui_url
    host = registered.hosts["cluster-a"]
    suffix = uuid.uuid4().hex[:6]
    backup = create_job(
        load_job_spec(
            registered.spec(
                name=f"ui-backup-{suffix}", content=[{"vm": "linux_local"}], schedule={"kind": "manual"}
            )
        ),
        None,
    )
    restore_spec = load_restore_spec(
        {
            "version": 1,
            "name": f"ui-restore-{suffix}",
            "kind": "vm",
            "cloud": registered.cloud,
            "backup_host": host,
            "pool": registered.pool,
            "source": {"vm": "linux_local", "set": "latest"},
            "target": {"name": "linux_local-ui", "nics": [{"index": 0, "ip": "auto", "mac": "auto"}]},
            "same_name": "suffix",
            "schedule": {"kind": "manual"},
        }
    )
    restore = create_job(restore_spec, None)
    start_background_worker(
        host, env={"BINGOBACKUP_WORK_POOL": job_pool, "PREFECT_WORKER_QUERY_SECONDS": "1"}
    )
    try:
        # The Deployments page lists both jobs with the backup job's schedule.
        page.goto(f"{ui}/deployments")
        # A shared server holds more deployments than one page shows: find ours by name, as
        # an operator of a busy server does.
        page.get_by_role("searchbox", name="Search deployments").fill(suffix)
        expect(page.get_by_text(backup.name).first).to_be_visible()
        expect(page.get_by_text(restore.name).first).to_be_visible()
        _shot(page, tmp_path, "deployments")

        # Run on the backup job: a run the worker completes.
        page.goto(f"{ui}/deployments/deployment/{backup.deployment_id}")
        page.get_by_role("button", name="Run", exact=True).first.click()
        page.get_by_role("button", name="Quick run").click()
        # The run form, with the job's spec as its parameters: its Run creates the run.
        run_form = page.get_by_role("dialog")
        expect(run_form.get_by_text("Run Deployment")).to_be_visible()
        _shot(page, tmp_path, "run")
        run_form.get_by_role("button", name="Run", exact=True).click()
        with get_client(sync_client=True) as client:
            (run,) = _wait_for_first_run(client, backup.deployment_id)
            final = wait_for_run(client, run.id, 240)
        assert final.state_type == "COMPLETED", final
        page.goto(f"{ui}/runs/flow-run/{run.id}")
        expect(page.get_by_text("Completed").first).to_be_visible()
        page.get_by_role("tablist").get_by_text("Artifacts").click()
        expect(page.get_by_text("summary").first).to_be_visible()
        _shot(page, tmp_path, "flow-run-artifacts")
        page.get_by_role("tablist").get_by_text("Logs").click()
        expect(page.get_by_text("VM linux_local").first).to_be_visible()
        _shot(page, tmp_path, "flow-run-logs")

        # Run on the restore job pauses it; the Resume form takes the verification code.
        with get_client(sync_client=True) as client:
            restore_run = client.create_flow_run_from_deployment(restore.deployment_id)
            _wait_for_state(client, restore_run.id, "PAUSED")
        page.goto(f"{ui}/runs/flow-run/{restore_run.id}")
        page.get_by_role("button", name="Resume").first.click()
        dialog = page.get_by_role("dialog")
        dialog.locator("textarea, input[type=text]").first.fill(restore_code(restore_spec) or "")
        _shot(page, tmp_path, "resume")
        dialog.get_by_role("button", name="Submit").click()
        with get_client(sync_client=True) as client:
            final = wait_for_run(client, restore_run.id, 240)
        assert final.state_type == "COMPLETED", final
    finally:
        stop_background_workers()
        delete_job(backup.name)
        delete_job(restore.name)


def _wait_for_first_run(client: object, deployment_id: uuid.UUID) -> list[object]:
    """The run the UI's Quick run created (it reaches the API a moment after the click)."""
    from prefect.client.orchestration import SyncPrefectClient

    assert isinstance(client, SyncPrefectClient)
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    for _ in range(100):
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )
        if runs:
            return list(runs)
        page_wait(0.2)
    raise AssertionError("pressing Run created no flow run")


def _wait_for_state(client: object, run_id: uuid.UUID, state_type: str) -> None:
    from prefect.client.orchestration import SyncPrefectClient

    assert isinstance(client, SyncPrefectClient)
    for _ in range(600):
        run = client.read_flow_run(run_id)
        if run.state and run.state.type.value == state_type:
            return
        page_wait(0.2)
    raise AssertionError(f"the restore run never reached {state_type}")


def page_wait(seconds: float) -> None:
    import time

    time.sleep(seconds)  # polling the API for a state, not standing in for synchronisation
