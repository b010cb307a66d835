"""The retention policy of a job (its `retention` section) or a pool (its default).

Only the shape and ranges live here; `bingobackup.lifecycle.retention` applies a policy to
a VM's backup sets. The rules are restic's `forget --keep-*` (docs/lifecycle.md).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

_WITHIN_PART = re.compile(r"(\d+)([ymwdh])")
_WITHIN = re.compile(r"^(?:\d+[ymwdh])+$")
DEFAULT_KEEP_FAILED_DAYS = 7


class WithinDuration(BaseModel):
    """A `keep_within` duration: years, months, days and hours (weeks are 7 days)."""

    model_config = ConfigDict(frozen=True)

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @classmethod
    def parse(cls, text: str) -> WithinDuration:
        value = text.strip().lower()
        if not _WITHIN.fullmatch(value):
            raise ValueError(
                f"keep_within must be a duration such as '30d', '2w', '6m', '1y', '12h' or '1y6m' "
                f"(y years, m months, w weeks, d days, h hours), got {text!r}"
            )
        amounts = {"y": 0, "m": 0, "w": 0, "d": 0, "h": 0}
        for number, unit in _WITHIN_PART.findall(value):
            amounts[unit] += int(number)
        return cls(
            years=amounts["y"], months=amounts["m"], days=amounts["d"] + 7 * amounts["w"], hours=amounts["h"]
        )

    def before(self, moment: datetime) -> datetime:
        """`moment` minus this duration, years and months by the calendar (a day past the end of
        the shorter month is that month's last day)."""
        month_index = moment.year * 12 + (moment.month - 1) - self.years * 12 - self.months
        year, month = divmod(month_index, 12)
        month += 1
        day = min(moment.day, _days_in_month(year, month))
        return moment.replace(year=year, month=month, day=day) - timedelta(days=self.days, hours=self.hours)


def _days_in_month(year: int, month: int) -> int:
    following = datetime(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


class RetentionPolicy(BaseModel):
    """Which backup sets of each VM to keep. A set is kept when any rule keeps it; with no
    keep rule at all every good set is kept (only old failed sets go)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_last: int | None = Field(default=None, ge=1, le=100000, description="the newest N sets")
    keep_hourly: int | None = Field(
        default=None, ge=1, le=100000, description="the newest set of each of the last N hours with sets"
    )
    keep_daily: int | None = Field(
        default=None, ge=1, le=100000, description="the newest set of each of the last N days with sets"
    )
    keep_weekly: int | None = Field(
        default=None, ge=1, le=100000, description="… of the last N ISO weeks with sets"
    )
    keep_monthly: int | None = Field(
        default=None, ge=1, le=100000, description="… of the last N months with sets"
    )
    keep_yearly: int | None = Field(
        default=None, ge=1, le=100000, description="… of the last N years with sets"
    )
    keep_within: str | None = Field(
        default=None,
        description="every set within this long of the VM's newest good set: '30d', '2w', '6m', '1y', '12h'",
    )
    keep_min: int = Field(
        default=1, ge=1, le=100000, description="never fewer than the newest N good sets per VM"
    )
    keep_failed_days: int = Field(
        default=DEFAULT_KEEP_FAILED_DAYS,
        ge=0,
        le=36500,
        description="failed and partial backups are removed once this many days old",
    )

    @field_validator("keep_within")
    @classmethod
    def _within(cls, value: str | None) -> str | None:
        if value is not None:
            WithinDuration.parse(value)
        return value

    @property
    def within(self) -> WithinDuration | None:
        return WithinDuration.parse(self.keep_within) if self.keep_within else None

    @property
    def has_keep_rule(self) -> bool:
        counts = (
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        )
        return any(count is not None for count in counts) or self.keep_within is not None

    def describe(self) -> str:
        """`keep_daily=7 keep_weekly=4 …` as an operator wrote it."""
        fields = self.model_dump(exclude_none=True)
        return " ".join(f"{name}={value}" for name, value in fields.items())
