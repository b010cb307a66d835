"""Rate schedules (parsing, overlap refusal, midnight wrap) and the token-bucket limiter."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError
from support.mover import FakeClock

from bingobackup.mover.ratelimit import RateLimiter, RateSchedule, RateWindow, parse_rate

MiB = 1 << 20


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("50MiB/s", 50 * MiB),
        ("512 KiB/s", 512 * 1024),
        ("1.5GiB/s", 1.5 * (1 << 30)),
        ("2mib/s", 2 * MiB),
        ("0", None),
        ("0MiB/s", None),
        (0, None),
    ],
)
def test_rates_parse_to_bytes_per_second(text: str | int, expected: float | None) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["fast", "50MB/s", "50", "-1MiB/s", "MiB/s"])
def test_bad_rates_are_refused_with_the_accepted_units(text: str) -> None:
    with pytest.raises(ValueError, match=r"KiB/s, MiB/s or GiB/s|negative"):
        parse_rate(text)


def test_spec_shaped_windows_validate_and_give_the_rate_in_force() -> None:
    schedule = RateSchedule.model_validate(
        [{"rate": "50MiB/s", "from": "08:00", "to": "18:00"}, {"rate": "0", "from": "18:00", "to": "20:00"}]
    )
    assert schedule.rate_at(datetime(2024, 5, 1, 8, 0, tzinfo=UTC)) == 50 * MiB
    assert schedule.rate_at(datetime(2024, 5, 1, 17, 59, 59)) == 50 * MiB  # naive = UTC
    assert schedule.rate_at(datetime(2024, 5, 1, 18, 0)) is None  # 0 = unlimited
    assert schedule.rate_at(datetime(2024, 5, 1, 7, 59)) is None  # outside every window
    # Another timezone is converted to UTC first: 17:00+08:00 is 09:00 UTC, 06:00+08:00 is 22:00.
    plus8 = timezone(timedelta(hours=8))
    assert schedule.rate_at(datetime(2024, 5, 1, 17, 0, tzinfo=plus8)) == 50 * MiB
    assert schedule.rate_at(datetime(2024, 5, 1, 6, 0, tzinfo=plus8)) is None


def test_a_window_may_wrap_midnight() -> None:
    schedule = RateSchedule.model_validate([{"rate": "10MiB/s", "from": "22:00", "to": "06:00"}])
    assert schedule.rate_at(datetime(2024, 1, 1, 23, 30)) == 10 * MiB
    assert schedule.rate_at(datetime(2024, 1, 2, 5, 59)) == 10 * MiB
    assert schedule.rate_at(datetime(2024, 1, 2, 6, 0)) is None
    assert schedule.rate_at(datetime(2024, 1, 2, 12, 0)) is None


def test_equal_from_and_to_covers_the_whole_day() -> None:
    schedule = RateSchedule.model_validate([{"rate": "1MiB/s"}])
    assert all(schedule.rate_at(datetime(2024, 1, 1, hour, 30)) == MiB for hour in range(24))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("08:00", "18:00"), ("17:00", "19:00")),
        (("22:00", "06:00"), ("05:00", "07:00")),  # overlap after midnight
        (("00:00", "00:00"), ("12:00", "13:00")),  # whole day overlaps everything
    ],
)
def test_overlapping_windows_are_refused_naming_both(first: tuple[str, str], second: tuple[str, str]) -> None:
    with pytest.raises(ValidationError) as raised:
        RateSchedule.model_validate(
            [
                {"rate": "1MiB/s", "from": first[0], "to": first[1]},
                {"rate": "2MiB/s", "from": second[0], "to": second[1]},
            ]
        )
    message = str(raised.value)
    assert f"1MiB/s {first[0]}–{first[1]} UTC" in message
    assert f"2MiB/s {second[0]}–{second[1]} UTC" in message
    assert "overlap" in message


def test_adjacent_windows_are_accepted() -> None:
    RateSchedule.model_validate(
        [
            {"rate": "1MiB/s", "from": "22:00", "to": "06:00"},
            {"rate": "2MiB/s", "from": "06:00", "to": "22:00"},
        ]
    )


@pytest.mark.parametrize("clock", ["25:00", "8", "08:60", "24:01"])
def test_bad_window_times_are_refused(clock: str) -> None:
    with pytest.raises(ValidationError, match="HH:MM in UTC"):
        RateWindow.model_validate({"rate": "1MiB/s", "from": clock, "to": "10:00"})


def test_schedule_is_built_from_other_models_with_the_same_shape() -> None:
    window = RateWindow(rate="3MiB/s", window_from="01:00", window_to="02:00")
    schedule = RateSchedule.of([window])
    assert schedule.rate_at(datetime(2024, 1, 1, 1, 30)) == 3 * MiB


def test_limiter_paces_to_the_rate_with_a_one_chunk_burst() -> None:
    clock = FakeClock(datetime(2024, 1, 1, 12, 0, tzinfo=UTC))
    limiter = RateLimiter(20 * MiB, burst_bytes=MiB, clock=clock.monotonic, sleep=clock.sleep, now=clock.now)
    for _ in range(8):
        limiter.acquire(MiB)
    # The first MiB rides the burst; the other 7 MiB take 7/20 s.
    assert clock.elapsed == pytest.approx(0.35, rel=1e-6)


def test_idle_time_buys_at_most_one_burst() -> None:
    clock = FakeClock(datetime(2024, 1, 1, 12, 0, tzinfo=UTC))
    limiter = RateLimiter(MiB, burst_bytes=MiB, clock=clock.monotonic, sleep=clock.sleep, now=clock.now)
    clock.elapsed = 3600.0  # an hour idle
    limiter.acquire(3 * MiB)
    assert clock.elapsed == pytest.approx(3600.0 + 2.0)


def test_a_window_opening_mid_backup_takes_effect() -> None:
    clock = FakeClock(datetime(2024, 1, 1, 7, 59, 58, tzinfo=UTC))
    schedule = RateSchedule.model_validate([{"rate": "1MiB/s", "from": "08:00", "to": "09:00"}])
    limiter = RateLimiter(schedule, burst_bytes=MiB, clock=clock.monotonic, sleep=clock.sleep, now=clock.now)
    for _ in range(10):
        limiter.acquire(MiB)
    assert clock.elapsed == 0.0  # before 08:00: unlimited
    clock.elapsed = 2.0  # now 08:00:00
    for _ in range(4):
        limiter.acquire(MiB)
    # One burst, then three seconds for the other three MiB.
    assert clock.elapsed == pytest.approx(5.0)


def test_a_window_closing_during_a_wait_releases_it() -> None:
    clock = FakeClock(datetime(2024, 1, 1, 8, 59, 59, tzinfo=UTC))
    schedule = RateSchedule.model_validate([{"rate": "1MiB/s", "from": "08:00", "to": "09:00"}])
    limiter = RateLimiter(schedule, burst_bytes=MiB, clock=clock.monotonic, sleep=clock.sleep, now=clock.now)
    limiter.acquire(MiB)
    limiter.acquire(10 * MiB)  # would take 10 s at 1 MiB/s, but the window ends after 1 s
    assert clock.elapsed == pytest.approx(1.0)


def test_limiter_holds_the_total_rate_across_threads_in_real_time() -> None:
    limiter = RateLimiter(20 * MiB, burst_bytes=MiB)
    started = time.monotonic()
    threads = [threading.Thread(target=lambda: [limiter.acquire(MiB) for _ in range(2)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert time.monotonic() - started >= 0.34  # 8 MiB at 20 MiB/s minus the 1 MiB burst
