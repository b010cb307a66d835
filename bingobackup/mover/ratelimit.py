"""Rate limits for the data mover: daily UTC windows of rates, and a token bucket obeying them.

The guide's transfer-rate (bytes sent to the pool) and backup/restore-rate (disk read/write)
limits are each a list of `(rate, UTC window)`. Outside every window there is no limit;
a rate of 0 means unlimited inside its window too. The limiter asks the schedule for the rate
in force at every `acquire`, so a window that opens or closes during a running backup takes
effect at the next chunk.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator

_MINUTES_PER_DAY = 24 * 60
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([KMG])iB/s)?\s*$", re.IGNORECASE)
_RATE_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
_CLOCK_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")


def parse_rate(value: str | int | float) -> float | None:
    """`'50MiB/s'` → bytes per second; `'0'`/`0` → None (unlimited). Units KiB/s, MiB/s, GiB/s."""
    if isinstance(value, int | float):
        number, unit = float(value), None
    else:
        match = _RATE.match(value)
        if not match:
            raise ValueError(
                f"rate {value!r} is not understood; write it as a number with KiB/s, MiB/s or GiB/s "
                "(e.g. '50MiB/s'), or 0 for unlimited"
            )
        number, unit = float(match.group(1)), match.group(2)
        if unit is None and number != 0:
            raise ValueError(f"rate {value!r} needs a unit: KiB/s, MiB/s or GiB/s (e.g. '{value}MiB/s')")
    if number < 0:
        raise ValueError(f"rate {value!r} must not be negative; use 0 for unlimited")
    if number == 0:
        return None
    return number * (_RATE_UNITS[unit.upper()] if unit else 1)


def _minute_of_day(value: str, field: str) -> int:
    match = _CLOCK_TIME.match(value.strip())
    hours, minutes = (int(match.group(1)), int(match.group(2))) if match else (-1, -1)
    if not match or not (0 <= minutes < 60 and (hours < 24 or (hours == 24 and minutes == 0))):
        raise ValueError(f"{field} time {value!r} must be HH:MM in UTC between 00:00 and 24:00")
    return hours * 60 + minutes


class RateWindow(BaseModel):
    """A rate in force every day from `from` to `to` (UTC). `to` before `from` wraps midnight;
    `from` equal to `to` (the default 00:00–00:00) covers the whole day."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    rate: str = Field(description="e.g. '50MiB/s' (KiB/s, MiB/s, GiB/s); 0 = unlimited")
    window_from: str = Field(default="00:00", alias="from")
    window_to: str = Field(default="00:00", alias="to")

    @field_validator("rate", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> str:
        text = str(value)
        parse_rate(text)
        return text

    @field_validator("window_from", "window_to")
    @classmethod
    def _clock(cls, value: str) -> str:
        _minute_of_day(value, "window")
        return value

    @property
    def bytes_per_second(self) -> float | None:
        return parse_rate(self.rate)

    def spans(self) -> list[tuple[int, int]]:
        """The window as half-open minute ranges within one day (two when it wraps midnight)."""
        start = _minute_of_day(self.window_from, "from")
        end = _minute_of_day(self.window_to, "to")
        if start == end or (start, end) == (0, _MINUTES_PER_DAY):
            return [(0, _MINUTES_PER_DAY)]
        if start < end:
            return [(start, end)]
        return [(start, _MINUTES_PER_DAY), (0, end)]

    def covers(self, minute: float) -> bool:
        return any(start <= minute < end for start, end in self.spans())

    def describe(self) -> str:
        return f"{self.rate} {self.window_from}–{self.window_to} UTC"


class RateSchedule(RootModel[list[RateWindow]]):
    """A list of non-overlapping daily windows; outside all of them there is no limit."""

    root: list[RateWindow] = Field(default_factory=list)

    @model_validator(mode="after")
    def _no_overlap(self) -> RateSchedule:
        windows = self.root
        for i, first in enumerate(windows):
            for second in windows[i + 1 :]:
                if any(
                    a_start < b_end and b_start < a_end
                    for a_start, a_end in first.spans()
                    for b_start, b_end in second.spans()
                ):
                    raise ValueError(
                        f"rate windows {first.describe()} and {second.describe()} overlap; "
                        "each moment of the day may have only one rate, so shorten or merge them"
                    )
        return self

    @classmethod
    def of(cls, limits: Iterable[Any]) -> RateSchedule:
        """From windows, mappings, or any pydantic model with `rate`/`from`/`to` (e.g. a spec's)."""
        items = [item.model_dump(by_alias=True) if isinstance(item, BaseModel) else item for item in limits]
        return cls.model_validate(items)

    def rate_at(self, moment: datetime) -> float | None:
        """Bytes per second in force at `moment` (naive means UTC), or None for unlimited."""
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC)
        minute = moment.hour * 60 + moment.minute + moment.second / 60 + moment.microsecond / 60e6
        for window in self.root:
            if window.covers(minute):
                return window.bytes_per_second
        return None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class RateLimiter:
    """A thread-safe token bucket whose rate follows a `RateSchedule` (or a fixed rate).

    `acquire(n)` takes n bytes of budget, waiting as needed. The bucket holds at most
    `burst_bytes` (about one chunk), so an idle period never buys a long burst. A request
    larger than the bucket goes into debt and waits it off, so any chunk size works.
    Waiting happens under the lock: callers are served one after another, fairly enough
    for a few channels, and the total rate holds across all of them.
    """

    def __init__(
        self,
        schedule: RateSchedule | float | None,
        *,
        burst_bytes: int = 4 << 20,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = _utc_now,
        max_wait_slice: float = 0.25,
    ) -> None:
        if burst_bytes <= 0:
            raise ValueError("burst_bytes must be positive")
        self._schedule = schedule
        self._burst = float(burst_bytes)
        self._clock = clock
        self._sleep = sleep
        self._now = now
        # Sleep in slices so a window that opens or closes during a long wait is noticed.
        self._max_wait_slice = max_wait_slice
        self._lock = threading.Lock()
        self._tokens = self._burst
        self._last = clock()
        self.waited_seconds = 0.0

    def rate_now(self) -> float | None:
        if isinstance(self._schedule, RateSchedule):
            return self._schedule.rate_at(self._now())
        return self._schedule

    def _refill(self) -> float | None:
        rate = self.rate_now()
        now = self._clock()
        if rate is None:
            self._tokens = self._burst
        else:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * rate)
        self._last = now
        return rate

    def acquire(self, nbytes: int, should_stop: Callable[[], bool] | None = None) -> None:
        """Take `nbytes` of budget, waiting as needed; returns early once `should_stop()` is true
        (a cancelled backup must not sit out a slow limit)."""
        if nbytes <= 0:
            return
        with self._lock:
            if self._refill() is None:
                return
            self._tokens -= nbytes
            # Half a byte of slack: float rounding must not leave an endless sub-byte debt.
            while self._tokens < -0.5:
                rate = self.rate_now()
                if rate is None:
                    self._tokens = self._burst
                    self._last = self._clock()
                    return
                if should_stop is not None and should_stop():
                    return
                wait = min(-self._tokens / rate, self._max_wait_slice)
                self._sleep(wait)
                self.waited_seconds += wait
                self._refill()
