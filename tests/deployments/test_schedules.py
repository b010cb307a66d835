"""Each schedule kind, created as a deployment through our code: the next run times asserted
are the scheduled flow runs the Prefect server made from the deployment's schedules."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from prefect.client.orchestration import get_client

from bingobackup.specs.schedule import MonthlySchedule
from deployments.jobs import JobInfo
from deployments.runs import upcoming_runs
from deployments.schedules import describe_schedule, schedule_rrule

MakeJob = Callable[..., JobInfo]


def next_runs(job: JobInfo, count: int) -> list[datetime]:
    """The next `count` run times Prefect scheduled for the job, in the job's time zone."""
    zone = ZoneInfo(job.spec.schedule.timezone)
    with get_client(sync_client=True) as client:
        runs = upcoming_runs(client, job.deployment_id, count)
        deployment = client.read_deployment(job.deployment_id)
    assert len(deployment.schedules) == (0 if job.schedule_kind in {"manual", "immediate"} else 1)
    times = [run.expected_start for run in runs]
    assert all(t is not None for t in times)
    return [t.astimezone(zone) for t in times if t is not None]


def test_manual_job_has_no_schedule_and_no_run(make_job: MakeJob) -> None:
    job = make_job({"kind": "manual"})
    assert job.schedules == []
    assert next_runs(job, 3) == []


def test_immediate_job_runs_once_at_creation(make_job: MakeJob) -> None:
    before = datetime.now(UTC)
    job = make_job({"kind": "immediate"})
    runs = next_runs(job, 3)
    assert len(runs) == 1
    assert before - timedelta(seconds=5) <= runs[0] <= datetime.now(UTC) + timedelta(seconds=5)


def test_once_runs_exactly_at_its_time_in_its_zone(make_job: MakeJob) -> None:
    day = datetime.now(UTC).date() + timedelta(days=3)
    job = make_job({"kind": "once", "at": f"{day}T10:30:00", "timezone": "Asia/Shanghai"})
    assert next_runs(job, 3) == [datetime.combine(day, time(10, 30), ZoneInfo("Asia/Shanghai"))]
    # 10:30 in Shanghai is 02:30 UTC: the zone was honoured, not UTC assumed.
    assert next_runs(job, 1)[0].astimezone(UTC).time() == time(2, 30)


def test_hourly_every_two_hours_only_inside_the_window(make_job: MakeJob) -> None:
    job = make_job(
        {"kind": "hourly", "every": 2, "from": "08:00", "to": "18:00", "timezone": "Europe/Berlin"}
    )
    runs = next_runs(job, 14)
    slots = [time(h, 0) for h in (8, 10, 12, 14, 16, 18)]
    first = slots.index(runs[0].time())
    assert [r.time() for r in runs] == [slots[(first + i) % 6] for i in range(14)]
    for earlier, later in itertools.pairwise(runs):
        # The next day starts again at 08:00: nothing runs between 18:00 and 08:00.
        expected_gap = timedelta(hours=14) if earlier.time() == time(18, 0) else timedelta(hours=2)
        assert later - earlier == expected_gap


def test_hourly_every_45_minutes_in_a_window(make_job: MakeJob) -> None:
    job = make_job({"kind": "hourly", "every_minutes": 45, "from": "08:00", "to": "10:00"})
    runs = next_runs(job, 9)
    assert {r.time() for r in runs} == {time(8, 0), time(8, 45), time(9, 30)}
    per_day: dict[date, int] = {}
    for run in runs:
        per_day[run.date()] = per_day.get(run.date(), 0) + 1
    assert max(per_day.values()) == 3


def test_hourly_window_across_midnight(make_job: MakeJob) -> None:
    job = make_job({"kind": "hourly", "every": 2, "from": "22:00", "to": "02:00"})
    runs = next_runs(job, 6)
    assert {r.time() for r in runs} == {time(22, 0), time(0, 0), time(2, 0)}
    assert all(b - a in (timedelta(hours=2), timedelta(hours=20)) for a, b in itertools.pairwise(runs))


def test_daily_every_three_days_at_a_time_in_new_york(make_job: MakeJob) -> None:
    job = make_job({"kind": "daily", "every": 3, "at": "02:30", "timezone": "America/New_York"})
    runs = next_runs(job, 4)
    assert all(r.time() == time(2, 30) for r in runs)
    assert [(b.date() - a.date()).days for a, b in itertools.pairwise(runs)] == [3, 3, 3]
    assert runs[0] - datetime.now(UTC) <= timedelta(days=3)
    # The wall-clock time is New York's: its UTC time is 06:30 or 07:30, never 02:30.
    assert {r.astimezone(UTC).time() for r in runs} <= {time(6, 30), time(7, 30)}


def test_weekly_every_two_weeks_on_monday_and_saturday(make_job: MakeJob) -> None:
    job = make_job(
        {"kind": "weekly", "every": 2, "weekdays": ["sat", "mon"], "at": "02:00", "timezone": "Asia/Shanghai"}
    )
    runs = next_runs(job, 6)
    assert all(r.time() == time(2, 0) for r in runs)
    assert {r.strftime("%a") for r in runs} == {"Mon", "Sat"}
    gaps = {(b.date() - a.date()).days for a, b in itertools.pairwise(runs)}
    # Monday → Saturday of the same week (5 days), Saturday → Monday two weeks on (9 days).
    assert gaps == {5, 9}


def test_monthly_last_friday(make_job: MakeJob) -> None:
    job = make_job({"kind": "monthly", "weekdays": ["last fri"], "at": "23:00"})
    runs = next_runs(job, 6)
    for run in runs:
        assert run.strftime("%a") == "Fri" and run.time() == time(23, 0)
        assert (run + timedelta(days=7)).month != run.month  # no later Friday in its month
    months = [(r.year * 12 + r.month) for r in runs]
    assert [b - a for a, b in itertools.pairwise(months)] == [1] * 5


def test_monthly_first_monday_in_chosen_months(make_job: MakeJob) -> None:
    job = make_job({"kind": "monthly", "months": [1, 7], "weekdays": ["first mon"], "at": "04:00"})
    runs = next_runs(job, 4)
    assert all(r.strftime("%a") == "Mon" and r.day <= 7 and r.month in (1, 7) for r in runs)


def test_monthly_31st_is_skipped_in_short_months(make_job: MakeJob) -> None:
    job = make_job({"kind": "monthly", "dates": [31], "at": "01:00"})
    runs = next_runs(job, 7)
    assert all(r.day == 31 for r in runs)
    # A year of runs covers each of the seven 31-day months once; 30-day months and February never.
    assert sorted(r.month for r in runs) == [1, 3, 5, 7, 8, 10, 12]


def test_monthly_last_day_of_february_follows_leap_years(make_job: MakeJob) -> None:
    job = make_job({"kind": "monthly", "months": [2], "dates": ["last"], "at": "01:00"})
    runs = next_runs(job, 4)
    assert all(r.month == 2 for r in runs)
    for run in runs:
        leap = run.year % 4 == 0 and (run.year % 100 != 0 or run.year % 400 == 0)
        assert run.day == (29 if leap else 28)


def test_monthly_every_two_months_is_an_rrule_interval_counted_from_creation() -> None:
    schedule = MonthlySchedule(every=2, dates=[1, "last"], at="03:00")
    rule = schedule_rrule(schedule, datetime(2025, 1, 15, 9, 0, tzinfo=UTC))
    assert rule == (
        "DTSTART:20250115T000000\nRRULE:FREQ=MONTHLY;INTERVAL=2;BYMONTH=1,2,3,4,5,6,7,8,9,10,11,12;"
        "BYMONTHDAY=-1,1;BYHOUR=3;BYMINUTE=0;BYSECOND=0"
    )
    assert rule is not None
    dates = [d.date() for d in itertools.islice(rrulestr(rule), 5)]
    # January (the creation month, its 1st already past), March, May: never February or April.
    assert dates == [
        date(2025, 1, 31),
        date(2025, 3, 1),
        date(2025, 3, 31),
        date(2025, 5, 1),
        date(2025, 5, 31),
    ]
    assert describe_schedule(schedule) == "monthly: every 2 months on 1, last at 03:00 (UTC)"


def test_monthly_every_three_months_on_the_first(make_job: MakeJob) -> None:
    job = make_job({"kind": "monthly", "every": 3, "dates": [1], "at": "02:00"})
    runs = next_runs(job, 4)
    assert all(r.day == 1 and r.time() == time(2, 0) for r in runs)
    months = [r.year * 12 + r.month for r in runs]
    assert [b - a for a, b in itertools.pairwise(months)] == [3, 3, 3]
    assert job.created is not None
    created = job.created.astimezone(UTC)
    # Counted from the month the job was created, so its first run is at most three months out.
    assert (months[0] - (created.year * 12 + created.month)) % 3 == 0
    assert 0 <= months[0] - (created.year * 12 + created.month) <= 3
