"""Job specs for the job tests."""

from __future__ import annotations

from typing import Any


def job_spec(name: str, schedule: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "name": name,
        "cloud": "demo",
        "backup_host": "i-JOBTESTS",
        "pool": "local-dedup",
        "content": [{"cluster": "cluster-a"}],
        "schedule": schedule,
        **overrides,
    }
