"""What a benchmark step measured, and the figures derived from it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Measurement(BaseModel):
    """What one step cost. Throughputs are in decimal MB/s, as tools usually print them."""

    name: str
    wall_seconds: float
    cpu_seconds: float
    peak_rss_bytes: int
    disk_bytes: int  # size of the disk the step covers
    nonzero_bytes: int  # non-zero data in it
    stored_bytes: int = 0  # size of the pool / repository after the step
    limit_seconds: float | None = None  # the machine's least time for the same work (ideal 2-core)
    measured_limit_seconds: float | None = None  # the same from rates measured on all cores at once
    extra: dict[str, Any] = {}

    @property
    def disk_mb_s(self) -> float:
        return self.disk_bytes / 1e6 / self.wall_seconds

    @property
    def data_mb_s(self) -> float:
        return self.nonzero_bytes / 1e6 / self.wall_seconds

    @property
    def fraction_of_limit(self) -> float | None:
        return None if self.limit_seconds is None else self.limit_seconds / self.wall_seconds

    @property
    def fraction_of_measured_limit(self) -> float | None:
        if self.measured_limit_seconds is None:
            return None
        return self.measured_limit_seconds / self.wall_seconds
