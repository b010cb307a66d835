"""A registered simulated cloud, backup hosts and a pool, for flow tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bingobackup.cloud.client import BingoCloudClient

if TYPE_CHECKING:
    from bingobackup.sim.server import RunningSimulator

POOL_PASSPHRASE = "pool passphrase for tests"


@dataclass
class Registered:
    cloud: str
    pool: str
    pool_dir: Path
    hosts: dict[str, str]  # cluster name → backup host instance id
    sim: RunningSimulator
    client: BingoCloudClient

    def spec(self, cluster: str = "cluster-a", **overrides: Any) -> dict[str, Any]:
        options = {"retry": {"count": 0, "interval_minutes": 0}, **overrides.pop("options", {})}
        return {
            "version": 1,
            "name": f"job-{self.cloud}",
            "cloud": self.cloud,
            "backup_host": self.hosts[cluster],
            "pool": self.pool,
            "content": [{"cluster": cluster}],
            "options": options,
            **overrides,
        }

    def volume_file(self, volume_id: str) -> Path:
        return self.sim.state_dir / "volumes" / f"{volume_id}.raw"
