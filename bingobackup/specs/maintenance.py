"""A pool's maintenance schedule: when its prune, garbage collection and verify run.

Each task takes one of the job schedule kinds (`schedule.py`), or None when it is off.
Defaults (issue 23): prune daily, GC weekly, verify monthly, at night and staggered so the
three never start together. `deployments/maintenance.py` turns them into Prefect deployments
run by the worker of `host`, a backup host that reaches the pool.

On the command line a schedule is written short (`daily@02:00`, `weekly:sat,sun@03:00`,
`monthly:1,15@04:00`, `monthly:last`, `hourly:6`, `manual`, `off`) or as a YAML mapping of a
job schedule (`{kind: daily, every: 2, at: "01:30", timezone: Asia/Shanghai}`).
"""

from __future__ import annotations

from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from bingobackup.specs.schedule import (
    WEEKDAYS,
    DailySchedule,
    HourlySchedule,
    ManualSchedule,
    MonthlySchedule,
    Schedule,
    WeeklySchedule,
)

MaintenanceTask = Literal["prune", "gc", "verify"]
MAINTENANCE_TASKS: tuple[MaintenanceTask, ...] = ("prune", "gc", "verify")
OFF = "off"
SCHEDULE_SYNTAX = (
    "daily[@HH:MM], weekly[:DAY,…][@HH:MM], monthly[:DATE,…|last][@HH:MM], hourly[:N], manual, off, "
    'or a YAML mapping such as {kind: daily, at: "02:00", timezone: Asia/Shanghai}'
)

_SCHEDULE = TypeAdapter[Schedule](Schedule)


class PoolMaintenance(BaseModel):
    """When a pool's prune, GC and verify run (None: that task is off), and on which backup host."""

    model_config = ConfigDict(extra="forbid")

    prune: Schedule | None = Field(
        default_factory=lambda: DailySchedule(at="01:00"), description="Prune by the retention rules"
    )
    gc: Schedule | None = Field(
        default_factory=lambda: WeeklySchedule(weekdays=["sun"], at="03:00"),
        description="Garbage collection and repack",
    )
    verify: Schedule | None = Field(
        default_factory=lambda: MonthlySchedule(dates=[1], at="05:00"),
        description="Read and check every stored chunk",
    )
    host: str | None = Field(
        default=None, description="Instance id of the backup host whose worker runs them (reaches the pool)"
    )

    def schedule_of(self, task: MaintenanceTask) -> Schedule | None:
        schedule: Schedule | None = getattr(self, task)
        return schedule


def _short_schedule(text: str) -> Schedule:
    """`kind[:values][@HH:MM]` as a schedule (see the module's docstring)."""
    head, _, at = text.partition("@")
    kind, _, values = head.partition(":")
    items = [v.strip() for v in values.split(",") if v.strip()]
    timed = {"at": at} if at else {}
    match kind.strip():
        case "manual" if not items and not at:
            return ManualSchedule()
        case "daily" if not items:
            return DailySchedule(**timed)
        case "weekly":
            return WeeklySchedule(weekdays=items or ["sun"], **timed)
        case "monthly":
            dates = [d if d == "last" else int(d) for d in items] or [1]
            return MonthlySchedule(dates=dates, **timed)
        case "hourly" if not at:
            return HourlySchedule(every=int(items[0]) if items else 1)
    raise ValueError(f"{text!r} is not a schedule")


def parse_schedule_text(text: str, what: str) -> Schedule | None:
    """A schedule as an operator types it (None for `off`); a ValueError naming `what` and the
    accepted syntax otherwise."""
    cleaned = text.strip()
    if cleaned.lower() in (OFF, "none"):
        return None
    try:
        if cleaned.startswith("{"):
            return _SCHEDULE.validate_python(yaml.safe_load(cleaned))
        return _short_schedule(cleaned.lower())
    except ValidationError as error:
        first = error.errors()[0]
        reason = str(first["msg"]).removeprefix("Value error, ")
        raise ValueError(f"{what} schedule {text!r}: {reason}") from None
    except (ValueError, yaml.YAMLError, AttributeError):
        weekdays = ", ".join(WEEKDAYS)
        raise ValueError(
            f"{what} schedule {text!r} is not understood: write {SCHEDULE_SYNTAX} (days: {weekdays})"
        ) from None
