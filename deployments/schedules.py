"""The guide's seven schedule kinds as Prefect deployment schedules.

Every recurring kind becomes one Prefect `RRuleSchedule` in the spec's IANA time zone, so
the times are wall-clock times there (02:00 Asia/Shanghai stays 02:00 across the year) and
the Prefect UI shows the job's rule next to the deployment. RRULE, not cron, because cron
can say neither "every 3 days", "every 2 weeks" nor "last Friday of the month", and an
`IntervalSchedule` cannot stay inside a daily window.

- manual, immediate: no schedule (immediate also gets one run at creation: see `jobs.py`);
- once: `DTSTART=<at>` with `COUNT=1`, so the UI shows the date the job will run and the
  scheduler creates that run itself, like any other schedule (a bare scheduled run would not
  show up as the job's schedule, and would be lost on `job edit`);
- hourly: the run times of one day inside the window, grouped into `FREQ=DAILY` rules
  (`BYHOUR × BYMINUTE`) — one rule when the step divides an hour, a few otherwise;
- daily / weekly / monthly: `FREQ=DAILY;INTERVAL=n`, `FREQ=WEEKLY;INTERVAL=n;BYDAY=…`,
  `FREQ=MONTHLY;BYMONTH=…;BYMONTHDAY=…` (`last` = -1) or `BYDAY=+1MO,-1FR`; every N months
  adds `INTERVAL=n`, counted from the month of DTSTART (the job's creation).

A date such as 31 is skipped in months without it (RFC 5545), never moved to another day;
`last` is the way to say "the last day of every month".
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, time
from zoneinfo import ZoneInfo

from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.schedules import RRuleSchedule

from bingobackup.specs.schedule import (
    DailySchedule,
    HourlySchedule,
    ImmediateSchedule,
    ManualSchedule,
    MonthlySchedule,
    OnceSchedule,
    Schedule,
    WeeklySchedule,
)

_BYDAY = {"mon": "MO", "tue": "TU", "wed": "WE", "thu": "TH", "fri": "FR", "sat": "SA", "sun": "SU"}
_POSITION = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
_DAY_MINUTES = 24 * 60


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _hour_minute(hhmm: str) -> str:
    hours, minutes = hhmm.split(":")
    return f"BYHOUR={int(hours)};BYMINUTE={int(minutes)};BYSECOND=0"


def _dtstart(moment: datetime) -> str:
    return f"DTSTART:{moment:%Y%m%dT%H%M%S}"


def hourly_times(schedule: HourlySchedule) -> list[int]:
    """Minutes after midnight of each run in one day: from the window's start, every step,
    up to and including its end; a window whose end is before its start runs past midnight."""
    step = schedule.every_minutes if schedule.every_minutes is not None else (schedule.every or 1) * 60
    start = _minutes(schedule.window_from)
    length = (_minutes(schedule.window_to) - start) % _DAY_MINUTES
    return sorted({(start + offset) % _DAY_MINUTES for offset in range(0, length + 1, step)})


def _hourly_rules(schedule: HourlySchedule) -> list[str]:
    hours_by_minute: dict[int, set[int]] = defaultdict(set)
    for minute_of_day in hourly_times(schedule):
        hours_by_minute[minute_of_day % 60].add(minute_of_day // 60)
    # Minutes that share the same hours make one rule: a step dividing 60 gives a single rule.
    minutes_by_hours: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for minute, hours in sorted(hours_by_minute.items()):
        minutes_by_hours[tuple(sorted(hours))].append(minute)
    return [
        f"RRULE:FREQ=DAILY;BYHOUR={','.join(map(str, hours))};BYMINUTE={','.join(map(str, minutes))};BYSECOND=0"
        for hours, minutes in sorted(minutes_by_hours.items(), key=lambda item: (item[1][0], item[0]))
    ]


def _monthly_rule(schedule: MonthlySchedule) -> str:
    months = ",".join(str(m) for m in sorted(set(schedule.months)))
    if schedule.dates:
        days = sorted({-1 if d == "last" else int(d) for d in schedule.dates})
        which = "BYMONTHDAY=" + ",".join(str(d) for d in days)
    else:
        positions = []
        for spec in schedule.weekdays:
            position, weekday = spec.split()
            positions.append(f"{_POSITION[position]:+d}{_BYDAY[weekday]}")
        which = "BYDAY=" + ",".join(positions)
    # INTERVAL=1 is left out so every stored monthly job keeps its exact rule.
    interval = f"INTERVAL={schedule.every};" if schedule.every > 1 else ""
    return f"RRULE:FREQ=MONTHLY;{interval}BYMONTH={months};{which};{_hour_minute(schedule.at)}"


def schedule_rrule(schedule: Schedule, anchor: datetime) -> str | None:
    """The RRULE text (with DTSTART, wall-clock time in the schedule's zone) of a schedule;
    None for the kinds that never run by themselves.

    `anchor` is when the job was first created: intervals of several days or weeks count from
    its day, so `job edit` does not shift an "every 2 weeks" job by a week.
    """
    zone = ZoneInfo(schedule.timezone)
    start_of_anchor_day = datetime.combine(anchor.astimezone(zone).date(), time())
    match schedule:
        case ManualSchedule() | ImmediateSchedule():
            return None
        case OnceSchedule(at=at):
            local = at.astimezone(zone).replace(tzinfo=None) if at.tzinfo else at
            return f"{_dtstart(local)}\nRRULE:FREQ=DAILY;COUNT=1"
        case HourlySchedule():
            return "\n".join([_dtstart(start_of_anchor_day), *_hourly_rules(schedule)])
        case DailySchedule(every=every, at=at):
            rule = f"RRULE:FREQ=DAILY;INTERVAL={every};{_hour_minute(at)}"
        case WeeklySchedule(every=every, weekdays=weekdays, at=at):
            days = ",".join(_BYDAY[d] for d in sorted(set(weekdays), key=list(_BYDAY).index))
            rule = f"RRULE:FREQ=WEEKLY;INTERVAL={every};WKST=MO;BYDAY={days};{_hour_minute(at)}"
        case MonthlySchedule():
            rule = _monthly_rule(schedule)
    return f"{_dtstart(start_of_anchor_day)}\n{rule}"


def prefect_schedules(schedule: Schedule, anchor: datetime) -> list[DeploymentScheduleCreate]:
    """The deployment schedules of a job: empty for manual and immediate, else one RRule."""
    rrule = schedule_rrule(schedule, anchor)
    if rrule is None:
        return []
    return [DeploymentScheduleCreate(schedule=RRuleSchedule(rrule=rrule, timezone=schedule.timezone))]


def describe_schedule(schedule: Schedule) -> str:
    """One line an operator reads in `job list`/`job show`."""
    zone = f"({schedule.timezone})"
    match schedule:
        case ManualSchedule():
            return "manual: started by an operator"
        case ImmediateSchedule():
            return "immediate: ran when the job was created"
        case OnceSchedule(at=at):
            return f"once at {at:%Y-%m-%d %H:%M} {zone}"
        case HourlySchedule(every_minutes=minutes, every=hours):
            step = f"{minutes} min" if minutes is not None else f"{hours} h"
            return f"hourly: every {step} from {schedule.window_from} to {schedule.window_to} {zone}"
        case DailySchedule(every=every, at=at):
            return f"daily: every {every} day(s) at {at} {zone}"
        case WeeklySchedule(every=every, weekdays=weekdays, at=at):
            return f"weekly: every {every} week(s) on {', '.join(weekdays)} at {at} {zone}"
        case MonthlySchedule(every=every, months=months, dates=dates, weekdays=weekdays, at=at):
            which = ", ".join(str(d) for d in dates) if dates else ", ".join(weekdays)
            if every > 1:
                in_months = f"every {every} months"
            elif sorted(months) == list(range(1, 13)):
                in_months = "every month"
            else:
                in_months = f"months {months}"
            return f"monthly: {in_months} on {which} at {at} {zone}"
    raise AssertionError(f"unknown schedule kind {schedule!r}")


def once_in_past(schedule: Schedule, now: datetime) -> bool:
    """True for a `once` schedule whose time has passed: it would never run."""
    if not isinstance(schedule, OnceSchedule):
        return False
    at = schedule.at if schedule.at.tzinfo else schedule.at.replace(tzinfo=ZoneInfo(schedule.timezone))
    return at <= now
