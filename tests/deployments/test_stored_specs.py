"""Stored version-1 schedules keep loading and keep mapping to the same Prefect schedule."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from bingobackup.specs.job import load_job_spec
from deployments.schedules import prefect_schedules, schedule_rrule

STORED = yaml.safe_load(
    (Path(__file__).parents[1] / "fixtures" / "specs" / "job-schedules-v1.yaml").read_text()
)
FIRST_CREATED = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("case", STORED["schedules"], ids=lambda case: case["schedule"]["kind"])
def test_stored_v1_schedule_maps_to_the_same_prefect_rrule(case: dict) -> None:
    spec = load_job_spec({**STORED["job"], "schedule": case["schedule"]})
    assert schedule_rrule(spec.schedule, FIRST_CREATED) == case["rrule"]
    schedules = prefect_schedules(spec.schedule, FIRST_CREATED)
    assert [s.schedule.timezone for s in schedules] == ([spec.schedule.timezone] if case["rrule"] else [])
