"""What the simulator saw: requests per action and peak concurrent attachments.

Concurrency tests read the peaks to check that parallel-VM / per-node / per-disk limits held:
a volume made from a snapshot remembers its source VM and node, so attaching it to a backup
host counts against both.
"""

from __future__ import annotations

import threading
from collections import Counter

from pydantic import BaseModel, Field


class SimStats(BaseModel):
    requests: dict[str, int] = Field(default_factory=dict, description="requests per action")
    max_attached_per_host: dict[str, int] = Field(
        default_factory=dict, description="peak volumes attached at once, per attaching instance"
    )
    max_attached_per_source_node: dict[str, int] = Field(default_factory=dict)
    max_attached_per_source_vm: dict[str, int] = Field(default_factory=dict)
    lost_replies: dict[str, int] = Field(
        default_factory=dict, description="requests processed whose reply was dropped (fault), per action"
    )
    spoiled_replies: dict[str, int] = Field(
        default_factory=dict, description="replies spoiled by the reply fault (ReplyFault), per action"
    )
    token_replays: dict[str, int] = Field(
        default_factory=dict,
        description="create calls answered with the resource an earlier call with its ClientToken made",
    )
    instance_state_at_snapshot: dict[str, str] = Field(
        default_factory=dict,
        description="volume id → power state of the VM it was attached to at its latest CreateSnapshot",
    )


class StatsRecorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._current: dict[str, Counter[str]] = {k: Counter() for k in ("host", "node", "vm")}
        self._peak: dict[str, dict[str, int]] = {k: {} for k in ("host", "node", "vm")}
        self._state_at_snapshot: dict[str, str] = {}
        self._lost_replies: Counter[str] = Counter()
        self._token_replays: Counter[str] = Counter()
        self._spoiled_replies: Counter[str] = Counter()

    def request(self, action: str) -> None:
        with self._lock:
            self._requests[action] += 1

    def reply_lost(self, action: str) -> None:
        with self._lock:
            self._lost_replies[action] += 1

    def reply_spoiled(self, action: str) -> None:
        with self._lock:
            self._spoiled_replies[action] += 1

    def token_replayed(self, action: str) -> None:
        with self._lock:
            self._token_replays[action] += 1

    def snapshotted(self, volume_id: str, instance_state: str) -> None:
        """Power-off tests check that the VM was stopped when its disk was captured."""
        with self._lock:
            self._state_at_snapshot[volume_id] = instance_state

    def _keys(self, host: str, source_node: str, source_vm: str) -> list[tuple[str, str]]:
        return [
            (kind, key) for kind, key in (("host", host), ("node", source_node), ("vm", source_vm)) if key
        ]

    def attached(self, host: str, source_node: str, source_vm: str) -> None:
        with self._lock:
            for kind, key in self._keys(host, source_node, source_vm):
                self._current[kind][key] += 1
                self._peak[kind][key] = max(self._peak[kind].get(key, 0), self._current[kind][key])

    def detached(self, host: str, source_node: str, source_vm: str) -> None:
        with self._lock:
            for kind, key in self._keys(host, source_node, source_vm):
                self._current[kind][key] = max(0, self._current[kind][key] - 1)

    def snapshot(self) -> SimStats:
        with self._lock:
            return SimStats(
                requests=dict(self._requests),
                max_attached_per_host=dict(self._peak["host"]),
                max_attached_per_source_node=dict(self._peak["node"]),
                max_attached_per_source_vm=dict(self._peak["vm"]),
                lost_replies=dict(self._lost_replies),
                spoiled_replies=dict(self._spoiled_replies),
                token_replays=dict(self._token_replays),
                instance_state_at_snapshot=dict(self._state_at_snapshot),
            )
