"""The keep-* rules against hand-computed expectations over a synthetic two-year calendar,
and the properties every policy keeps (hypothesis)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bingobackup.lifecycle.retention import SetPoint, apply_policy, plan_sets
from bingobackup.specs.retention import RetentionPolicy, WithinDuration

FIRST_DAY = date(2025, 1, 1)
DAYS = 730  # 2025-01-01 .. 2026-12-31
NOW = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)


def at(day: date, hour: int = 2, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def daily_calendar(hour: int = 2) -> list[SetPoint]:
    """One good set a day at `hour` UTC for two years, named by its date."""
    days = (FIRST_DAY + timedelta(days=n) for n in range(DAYS))
    return [SetPoint(f"{d.isoformat()}T{hour:02d}", at(d, hour), True) for d in days]


def kept(points: list[SetPoint], timezone: str = "UTC", **policy: object) -> set[str]:
    return {v.set_id for v in apply_policy(points, RetentionPolicy(**policy), timezone, NOW) if v.keep}


def ids(*days: str, hour: int = 2) -> set[str]:
    return {f"{d}T{hour:02d}" for d in days}


def test_daily_weekly_monthly_yearly_over_two_years() -> None:
    result = kept(daily_calendar(), keep_daily=7, keep_weekly=4, keep_monthly=12, keep_yearly=3)
    last_week = ids(*(f"2026-12-{d}" for d in range(25, 32)))
    # ISO weeks: 2026-W53 (Mon 28 Dec) newest is the 31st (a daily); W52 ends Sun 27 (a
    # daily); W51 ends Sun 20; W50 ends Sun 13.
    weeks = ids("2026-12-20", "2026-12-13")
    month_ends = ids(
        "2026-01-31",
        "2026-02-28",
        "2026-03-31",
        "2026-04-30",
        "2026-05-31",
        "2026-06-30",
        "2026-07-31",
        "2026-08-31",
        "2026-09-30",
        "2026-10-31",
        "2026-11-30",
    )  # December's newest is the 31st, a daily already
    years = ids("2025-12-31")  # 2026's is the 31st; only two years have sets
    assert result == last_week | weeks | month_ends | years
    assert len(result) == 21


def test_the_reasons_name_every_rule_that_kept_a_set() -> None:
    verdicts = apply_policy(
        daily_calendar(), RetentionPolicy(keep_daily=7, keep_monthly=2, keep_yearly=2), "UTC", NOW
    )
    by_id = {v.set_id: v for v in verdicts}
    assert by_id["2026-12-31T02"].reasons == ("daily", "monthly", "yearly")
    assert by_id["2026-11-30T02"].reasons == ("monthly",)
    assert by_id["2025-12-31T02"].reasons == ("yearly",)
    assert not by_id["2026-11-29T02"].keep and by_id["2026-11-29T02"].reasons == ("no rule keeps it",)
    assert [v.set_id for v in verdicts[:2]] == ["2026-12-31T02", "2026-12-30T02"]  # newest first


def test_keep_last_and_keep_within() -> None:
    calendar = daily_calendar()
    assert kept(calendar, keep_last=3) == ids("2026-12-31", "2026-12-30", "2026-12-29")
    # Within two weeks of the newest set (31 Dec 02:00): strictly after 17 Dec 02:00.
    assert kept(calendar, keep_within="2w") == ids(*(f"2026-12-{d}" for d in range(18, 32)))
    # One month back by the calendar: 31 Dec - 1 month = 30 Nov (the shorter month's last day).
    assert kept(calendar, keep_within="1m") == ids(*(f"2026-12-{d:02d}" for d in range(1, 32)))
    assert len(kept(calendar, keep_within="1y")) == 365
    assert kept(calendar, keep_within="12h") == ids("2026-12-31")


def test_buckets_are_in_the_jobs_time_zone() -> None:
    # Two sets a day, 10:00 and 20:00 UTC: in Shanghai (UTC+8) the 20:00 set is 04:00 next day.
    points = [
        p
        for d in (date(2026, 12, 30), date(2026, 12, 31))
        for p in (SetPoint(f"{d}T10", at(d, 10), True), SetPoint(f"{d}T20", at(d, 20), True))
    ]
    assert kept(points, "UTC", keep_daily=2) == {"2026-12-31T20", "2026-12-30T20"}
    assert kept(points, "Asia/Shanghai", keep_daily=2) == {"2026-12-31T20", "2026-12-31T10"}


def test_failed_sets_never_count_and_go_after_keep_failed_days() -> None:
    calendar = daily_calendar()
    failed = [
        SetPoint("failed-new", at(date(2026, 12, 31), 23), False),  # newest of all, and of the day
        SetPoint("failed-5d", at(date(2026, 12, 27), 3), False),
        SetPoint("failed-old", at(date(2026, 12, 1), 3), False),
    ]
    result = kept(calendar + failed, keep_daily=1)
    # The daily rule keeps the newest *good* set of the 31st, not the failed one after it.
    assert result == ids("2026-12-31") | {"failed-new", "failed-5d"}
    assert "failed-5d" not in kept(calendar + failed, keep_daily=1, keep_failed_days=3)


def test_keep_min_holds_whatever_else_says() -> None:
    calendar = daily_calendar()
    verdicts = apply_policy(calendar, RetentionPolicy(keep_yearly=1, keep_min=3), "UTC", NOW)
    assert {v.set_id: v.reasons for v in verdicts if v.keep} == {
        "2026-12-31T02": ("yearly",),
        "2026-12-30T02": ("keep_min 3",),
        "2026-12-29T02": ("keep_min 3",),
    }


def test_no_keep_rule_keeps_every_good_set() -> None:
    calendar = [*daily_calendar()[-10:], SetPoint("failed-old", at(date(2026, 1, 1)), False)]
    assert kept(calendar) == {p.set_id for p in calendar if p.good}


def test_a_set_goes_only_when_no_vm_in_it_keeps_it() -> None:
    day = date(2026, 12, 31)
    web = [SetPoint("s1", at(day, 1), True), SetPoint("s2", at(day, 2), True)]
    db = [SetPoint("s1", at(day, 1), True), SetPoint("s2", at(day, 2), False)]  # failed in s2
    policy = RetentionPolicy(keep_last=1, keep_failed_days=0)
    plans = plan_sets(
        {"web": apply_policy(web, policy, "UTC", NOW), "db": apply_policy(db, policy, "UTC", NOW)}
    )
    assert (plans["s2"].keep, plans["s2"].kept_for) == (True, ("web",))
    assert (plans["s1"].keep, plans["s1"].kept_for) == (True, ("db",))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", (0, 0, 30, 0)),
        ("2w", (0, 0, 14, 0)),
        ("6m", (0, 6, 0, 0)),
        ("1y6m", (1, 6, 0, 0)),
        ("12h", (0, 0, 0, 12)),
    ],
)
def test_keep_within_durations(text: str, expected: tuple[int, int, int, int]) -> None:
    d = WithinDuration.parse(text)
    assert (d.years, d.months, d.days, d.hours) == expected


def test_a_bad_keep_within_is_refused_naming_the_forms() -> None:
    with pytest.raises(ValueError, match=r"keep_within must be a duration such as '30d'.*got '30 days'"):
        RetentionPolicy(keep_within="30 days")


# -- properties ------------------------------------------------------------------------------

_START = datetime(2025, 1, 1, tzinfo=UTC)
points_strategy = st.lists(
    st.tuples(st.integers(0, 2 * 365 * 24 * 60), st.booleans()),
    min_size=0,
    max_size=60,
    unique_by=lambda t: t[0],
).map(
    lambda rows: [SetPoint(f"s{minute}", _START + timedelta(minutes=minute), good) for minute, good in rows]
)
counts = st.none() | st.integers(1, 12)
policy_strategy = st.builds(
    RetentionPolicy,
    keep_last=counts,
    keep_hourly=counts,
    keep_daily=counts,
    keep_weekly=counts,
    keep_monthly=counts,
    keep_yearly=counts,
    keep_within=st.none() | st.sampled_from(["12h", "3d", "2w", "1m", "6m", "1y", "1y6m"]),
    keep_min=st.integers(1, 5),
    keep_failed_days=st.integers(0, 30),
)
zones = st.sampled_from(["UTC", "Asia/Shanghai", "America/New_York", "Australia/Lord_Howe"])


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(points=points_strategy, policy=policy_strategy, zone=zones)
def test_properties_of_every_policy(points: list[SetPoint], policy: RetentionPolicy, zone: str) -> None:
    now = _START + timedelta(days=800)
    verdicts = apply_policy(points, policy, zone, now)
    assert sorted(v.set_id for v in verdicts) == sorted(p.set_id for p in points)
    keep = {v.set_id for v in verdicts if v.keep}
    good = [v.point for v in verdicts if v.point.good]  # newest first
    # No rule ever removes the newest good set; keep_min always holds.
    assert all(p.set_id in keep for p in good[: policy.keep_min])
    # Removing is idempotent: the policy applied to what it kept removes nothing more.
    again = apply_policy([p for p in points if p.set_id in keep], policy, zone, now)
    assert all(v.keep for v in again)
