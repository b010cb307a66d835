"""Job specs: the documented v1 shape loads, bad input is refused naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from bingobackup.specs.job import BackupJobSpec, load_job_spec
from bingobackup.specs.loading import SpecError
from bingobackup.specs.schedule import WeeklySchedule

FIXTURES = Path(__file__).parent.parent / "fixtures" / "specs"

MINIMAL = {
    "version": 1,
    "name": "j",
    "cloud": "demo",
    "backup_host": "i-1",
    "pool": "p",
    "content": [{"vm": "a"}],
}


def test_documented_v1_spec_loads() -> None:
    spec = load_job_spec(FIXTURES / "job-v1.yaml")
    assert spec.name == "nightly-cluster-a"
    assert isinstance(spec.schedule, WeeklySchedule) and spec.schedule.weekdays == ["sat"]
    assert spec.content[1].vm == "linux_local" and spec.content[1].disks == "system"
    assert spec.filters.exclude == ["*-tmp"]
    assert spec.options.skip_if_free_below is not None
    assert spec.options.skip_if_free_below.space_bytes == 500 << 30
    assert spec.options.transfer_limits.root[0].window_from == "08:00"
    assert spec.options.retry.count == 3


def test_defaults_follow_the_guide() -> None:
    spec = load_job_spec(dict(MINIMAL))
    assert spec.schedule.kind == "manual"
    o = spec.options
    assert (o.compression, o.parallel_vms, o.parallel_vms_per_node, o.parallel_disks_per_vm) == (
        "fast",
        2,
        2,
        2,
    )
    assert (o.dedup_mode, o.reconnect_minutes, o.retry.count, o.retry.interval_minutes) == (
        "agent",
        10,
        3,
        10,
    )


def test_round_trips_through_json_as_a_flow_parameter() -> None:
    spec = load_job_spec(FIXTURES / "job-v1.yaml")
    assert BackupJobSpec.model_validate_json(spec.model_dump_json(by_alias=True)) == spec


def test_monthly_every_n_months_survives_a_round_trip() -> None:
    # The stored form lists all twelve months next to `every`; reading it back is no conflict.
    spec = load_job_spec({**MINIMAL, "schedule": {"kind": "monthly", "every": 3, "dates": [1]}})
    assert BackupJobSpec.model_validate_json(spec.model_dump_json(by_alias=True)) == spec
    assert load_job_spec({**MINIMAL, "schedule": {"kind": "monthly", "dates": [1]}}).schedule.every == 1


@pytest.mark.parametrize(
    ("schedule", "needle"),
    [
        ({"kind": "hourly", "every": 25}, "1–24"),
        ({"kind": "daily", "every": 6, "at": "01:00"}, "1–5"),
        ({"kind": "weekly", "weekdays": [], "at": "01:00"}, "at least one day"),
        ({"kind": "monthly", "months": [2], "dates": [31]}, "never occurs"),
        ({"kind": "monthly", "every": 13, "dates": [1]}, "1–12 months"),
        ({"kind": "monthly", "every": 2, "months": [1, 7], "dates": [1]}, "not both"),
        ({"kind": "daily", "at": "25:00"}, "HH:MM"),
        ({"kind": "weekly", "weekdays": ["sat"], "timezone": "Mars/Base"}, "IANA"),
        ({"kind": "fortnightly"}, "kind"),
    ],
)
def test_out_of_range_schedules_are_refused_naming_the_field(schedule: dict, needle: str) -> None:
    with pytest.raises(SpecError) as info:
        load_job_spec({**MINIMAL, "schedule": schedule})
    assert needle in str(info.value)
    assert "schedule" in str(info.value)


def test_malformed_spec_lists_every_problem() -> None:
    bad = {**MINIMAL, "content": [], "options": {"parallel_vms": 0, "dedup_mode": "cloud", "typo": 1}}
    with pytest.raises(SpecError) as info:
        load_job_spec(bad)
    message = str(info.value)
    for field in ("content", "options.parallel_vms", "options.dedup_mode", "options.typo"):
        assert field in message


def test_yaml_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("version: 1\nname: [unclosed\n")
    with pytest.raises(SpecError, match=r"line \d+"):
        load_job_spec(path)
    with pytest.raises(SpecError, match="does not exist"):
        load_job_spec(tmp_path / "missing.yaml")


def test_overlapping_rate_windows_are_refused() -> None:
    limits = [
        {"rate": "10MiB/s", "from": "08:00", "to": "12:00"},
        {"rate": "1MiB/s", "from": "11:00", "to": "13:00"},
    ]
    with pytest.raises(SpecError, match="overlap"):
        load_job_spec({**MINIMAL, "options": {"read_limits": limits}})


def test_newer_version_is_refused_with_upgrade_advice() -> None:
    with pytest.raises(SpecError, match="newer bingobackup"):
        load_job_spec({**MINIMAL, "version": 99})
    with pytest.raises(SpecError, match="version"):
        load_job_spec({k: v for k, v in MINIMAL.items() if k != "version"})
