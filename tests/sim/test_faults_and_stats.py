"""Fault injection switched at run time, and the statistics concurrency tests read."""

from __future__ import annotations

import http.client

import pytest
from support.sim import admin, call, ok

from bingobackup.sim.server import RunningSimulator


def test_drop_and_throttle_then_clear(empty: RunningSimulator) -> None:
    faults = f"{empty.admin_url}/faults"

    assert admin(faults, "PUT", {"drop_rate": 1.0, "actions": ["DescribeClusters"]})[0] == 200
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        call(empty.endpoint, "DescribeClusters")
    assert call(empty.endpoint, "DescribeNodes").status == 200, "other actions are not affected"

    admin(faults, "PUT", {"throttle_rate": 1.0})
    throttled = call(empty.endpoint, "DescribeClusters")
    admin(faults, "PUT", {"error_rate": {"DescribeNodes": 1.0}})
    failing = call(empty.endpoint, "DescribeNodes")
    bad = admin(faults, "PUT", {"drop_rate": 2})
    admin(faults, "DELETE")

    assert (throttled.status, throttled.code) == (503, "RequestLimitExceeded")
    assert (failing.status, failing.code) == (500, "InternalError")
    assert bad[0] == 400 and "drop_rate" in bad[1]["error"]
    assert admin(faults, "GET")[1]["drop_rate"] == 0
    assert call(empty.endpoint, "DescribeClusters").status == 200


def test_seeded_faults_are_reproducible(empty: RunningSimulator) -> None:
    def run() -> list[int]:
        admin(f"{empty.admin_url}/faults", "PUT", {"throttle_rate": 0.5, "seed": 42})
        return [call(empty.endpoint, "DescribeClusters").status for _ in range(12)]

    first, second = run(), run()

    assert first == second and {200, 503} == set(first)


def test_stats_count_requests_per_action(empty: RunningSimulator) -> None:
    for _ in range(3):
        ok(empty.endpoint, "DescribeStorages")

    status, stats = admin(f"{empty.admin_url}/stats", "GET")

    assert status == 200 and stats["requests"]["DescribeStorages"] == 3
    assert empty.stats().requests["DescribeStorages"] == 3
    assert admin(f"{empty.admin_url}/health", "GET") == (200, {"ok": True})
