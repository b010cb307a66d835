"""The guide's seven schedule kinds (§5.1), validated with the guide's ranges.

Only the shape and ranges live here; `deployments/` maps them to Prefect schedules.
Every out-of-range value is refused with a message naming the field and its range.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_DAYS_IN_MONTH = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}


def check_hhmm(value: str, field: str) -> str:
    if not _HHMM.match(value):
        raise ValueError(f"{field} must be a time of day HH:MM (00:00–23:59), got {value!r}")
    return value


class _Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"timezone {value!r} is not an IANA time zone such as UTC or Asia/Shanghai"
            ) from None
        return value


class _AtTime(_Schedule):
    at: str = Field(default="00:00", description="time of day HH:MM in `timezone`")

    @field_validator("at")
    @classmethod
    def _at(cls, value: str) -> str:
        return check_hhmm(value, "at")


class ImmediateSchedule(_Schedule):
    """Runs once, as soon as the job is created."""

    kind: Literal["immediate"] = "immediate"


class ManualSchedule(_Schedule):
    """Never runs by itself; an operator starts it."""

    kind: Literal["manual"] = "manual"


class OnceSchedule(_Schedule):
    """Runs once at `at` (a date and time)."""

    kind: Literal["once"] = "once"
    at: datetime


class HourlySchedule(_Schedule):
    """Every 1–24 hours (or every N minutes), only inside a daily time window."""

    kind: Literal["hourly"] = "hourly"
    every: int | None = Field(default=1, description="hours between runs, 1–24")
    every_minutes: int | None = Field(
        default=None, description="minutes between runs, 1–1440, instead of hours"
    )
    window_from: str = Field(default="00:00", alias="from")
    window_to: str = Field(default="23:59", alias="to")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _ranges(self) -> HourlySchedule:
        check_hhmm(self.window_from, "from")
        check_hhmm(self.window_to, "to")
        if self.every_minutes is not None:
            if not 1 <= self.every_minutes <= 1440:
                raise ValueError(f"every_minutes must be 1–1440, got {self.every_minutes}")
        elif self.every is None or not 1 <= self.every <= 24:
            raise ValueError(f"hourly 'every' must be 1–24 hours, got {self.every}")
        return self


class DailySchedule(_AtTime):
    """Every 1–5 days at a time of day."""

    kind: Literal["daily"] = "daily"
    every: int = Field(default=1, description="days between runs, 1–5")

    @field_validator("every")
    @classmethod
    def _every(cls, value: int) -> int:
        if not 1 <= value <= 5:
            raise ValueError(f"daily 'every' must be 1–5 days, got {value}")
        return value


class WeeklySchedule(_AtTime):
    """Every N weeks on the chosen weekdays at a time of day."""

    kind: Literal["weekly"] = "weekly"
    every: int = Field(default=1, description="weeks between runs, 1–52")
    weekdays: list[Weekday]

    @model_validator(mode="after")
    def _ranges(self) -> WeeklySchedule:
        if not 1 <= self.every <= 52:
            raise ValueError(f"weekly 'every' must be 1–52 weeks, got {self.every}")
        if not self.weekdays:
            raise ValueError("weekly 'weekdays' must name at least one day (mon … sun)")
        return self


_POSITION = re.compile(r"^(first|second|third|fourth|last) (mon|tue|wed|thu|fri|sat|sun)$")


_ALL_MONTHS = list(range(1, 13))


class MonthlySchedule(_AtTime):
    """In the chosen months, or every N months, on chosen dates (1–31, `last`) or weekdays
    (`first mon`, `last fri`)."""

    kind: Literal["monthly"] = "monthly"
    every: int = Field(
        default=1, description="months between runs, 1–12, counted from the month the job was created"
    )
    months: list[int] = Field(default_factory=lambda: list(_ALL_MONTHS))
    dates: list[int | Literal["last"]] = Field(default_factory=list)
    weekdays: list[str] = Field(default_factory=list, description="e.g. 'first mon', 'last fri'")

    @model_validator(mode="after")
    def _ranges(self) -> MonthlySchedule:
        if not self.months or any(not 1 <= m <= 12 for m in self.months):
            raise ValueError(f"monthly 'months' must be 1–12 (at least one), got {self.months}")
        if not 1 <= self.every <= 12:
            raise ValueError(f"monthly 'every' must be 1–12 months, got {self.every}")
        if self.every > 1 and sorted(set(self.months)) != _ALL_MONTHS:
            # Both together would run only in the chosen months that the N-month step happens
            # to land on, which depends on the creation month: say so instead of surprising.
            raise ValueError(
                "monthly takes either 'every' (every N months) or 'months' (chosen months), not both"
            )
        if bool(self.dates) == bool(self.weekdays):
            raise ValueError(
                "monthly needs exactly one of 'dates' (1–31 or last) or 'weekdays' (e.g. 'first mon')"
            )
        for date in self.dates:
            if date == "last":
                continue
            if not 1 <= date <= 31:
                raise ValueError(f"monthly 'dates' must be 1–31 or 'last', got {date}")
            if all(date > _DAYS_IN_MONTH[m] for m in self.months):
                names = ", ".join(str(m) for m in self.months)
                raise ValueError(f"monthly date {date} never occurs in month(s) {names}")
        for spec in self.weekdays:
            if not _POSITION.match(spec):
                raise ValueError(
                    f"monthly weekday {spec!r} must be '<first|second|third|fourth|last> <mon…sun>'"
                )
        return self


Schedule = Annotated[
    ImmediateSchedule
    | OnceSchedule
    | ManualSchedule
    | HourlySchedule
    | DailySchedule
    | WeeklySchedule
    | MonthlySchedule,
    Field(discriminator="kind"),
]
