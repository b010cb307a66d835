"""Job-spec side of the options: no passphrase in a spec, rate windows from the spec drive
the limiter (the limit in force changes when a window opens or closes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bingobackup.mover.ratelimit import RateLimiter
from bingobackup.specs.job import load_job_spec
from bingobackup.specs.loading import SpecError

MIB = 1 << 20


def spec(**extra: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "name": "nightly",
        "cloud": "demo",
        "backup_host": "i-00000001",
        "pool": "encrypted-pool",
        "content": [{"cluster": "cluster-a"}],
        **extra,
    }


@pytest.mark.parametrize(
    "where", [{"passphrase": "hunter2"}, {"options": {"passphrase": "hunter2"}}], ids=["top", "options"]
)
def test_a_spec_cannot_carry_a_pool_passphrase(where: dict[str, Any]) -> None:
    """The passphrase lives in the pool's registration (a Prefect block, SecretStr), never in a spec file."""
    with pytest.raises(SpecError) as raised:
        load_job_spec(spec(**where))
    assert "passphrase" in str(raised.value)
    assert "hunter2" not in str(raised.value)


class WallClock:
    """Fake time for the limiter: monotonic seconds and the UTC wall clock move together."""

    def __init__(self, start: datetime) -> None:
        self.start, self.elapsed = start, 0.0

    def monotonic(self) -> float:
        return self.elapsed

    def sleep(self, seconds: float) -> None:
        self.elapsed += seconds

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed)


def test_the_limit_in_force_follows_the_spec_windows_during_a_backup() -> None:
    options = load_job_spec(
        spec(options={"read_limits": [{"rate": "1MiB/s", "from": "08:00", "to": "08:01"}]})
    ).options
    clock = WallClock(datetime(2024, 5, 1, 7, 59, 58, tzinfo=UTC))
    limiter = RateLimiter(
        options.read_limits, burst_bytes=MIB, clock=clock.monotonic, sleep=clock.sleep, now=clock.now
    )
    limiter.acquire(50 * MIB)  # 07:59:58, outside the window: unlimited
    assert clock.elapsed == 0
    clock.elapsed = 2.0  # 08:00:00, the window opens mid-backup
    for _ in range(10):
        limiter.acquire(MIB)
    assert clock.elapsed == pytest.approx(2.0 + 9.0, abs=0.3)  # one burst free, then 1 MiB/s
    clock.elapsed = 62.0  # 08:01:00, the window has closed
    limiter.acquire(100 * MIB)
    assert clock.elapsed == pytest.approx(62.0, abs=0.3)


def _registration(kind: str, pool_format: str | None = None) -> Any:
    from bingobackup.resources.models import PoolRegistration
    from bingobackup.storage.s3config import S3Settings

    return PoolRegistration(
        name=f"{kind}-pool",
        kind=kind,  # type: ignore[arg-type]
        location="/pools/x",
        format=pool_format,  # type: ignore[arg-type]
        s3=S3Settings(bucket="backups") if kind == "object" else None,
        backup_hosts=["i-00000001"] if kind == "lanfree" else [],
        library="/tapes" if kind == "tape" else None,
    )


@pytest.mark.parametrize(
    ("kind", "pool_format", "reason"),
    [
        ("standard", None, "in standard format, which keeps every chunk of every backup"),
        ("object", "standard", "in standard format, which keeps every chunk of every backup"),
        ("lanfree", "standard", "in standard format, which keeps every chunk of every backup"),
        ("tape", None, "self-contained stream on its media"),
        ("optical", None, "self-contained stream on its media"),
    ],
)
def test_server_side_dedup_is_refused_where_the_pool_has_no_index_saying_why(
    kind: str, pool_format: str | None, reason: str
) -> None:
    from bingobackup.backup.job import BackupJobError, check_dedup_mode

    server = load_job_spec(spec(options={"dedup_mode": "server"}))
    with pytest.raises(BackupJobError) as raised:
        check_dedup_mode(server, _registration(kind, pool_format))
    message = str(raised.value)
    assert f"pool '{kind}-pool' is a {kind} pool" in message and reason in message
    assert "options.dedup_mode: agent" in message
    check_dedup_mode(load_job_spec(spec()), _registration(kind, pool_format))  # agent-side: fine


@pytest.mark.parametrize(("kind", "pool_format"), [("dedup", None), ("object", None), ("lanfree", "dedup")])
def test_server_side_dedup_is_accepted_on_every_dedup_format_pool(kind: str, pool_format: str | None) -> None:
    from bingobackup.backup.job import check_dedup_mode

    check_dedup_mode(load_job_spec(spec(options={"dedup_mode": "server"})), _registration(kind, pool_format))
