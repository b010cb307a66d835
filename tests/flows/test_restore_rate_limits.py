"""The restore (disk write) and transfer-rate limits hold on a real restore of 200 MiB.

Measured from the bytes written and the time spent writing them. The token bucket may start
with one burst (4 MiB) in hand, so the elapsed time is at least (bytes − burst) / limit, well
above the 10 % lower bound; the upper bound is generous because other tests share the cores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.flow import Registered
from support.restore import MIB, BackedUp, back_up, sha256

from flows.restore import restore_disk

DATA_MIB = 200
LIMIT_MIB_S = 100


@pytest.fixture
def backed_up(registered: Registered, tmp_path: Path) -> BackedUp:
    return back_up(registered, tmp_path, name="big-data", data_mib=DATA_MIB)


def _restore_with(backed_up: BackedUp, name: str, options: dict[str, Any]) -> dict[str, Any]:
    state, result = backed_up.run(
        restore_disk,
        name=name,
        kind="disk",
        target={"disks": [{"volume": backed_up.data_volume, "name": name}]},
        options=options,
    )
    assert state.is_completed(), state.message
    [outcome] = result["outcomes"]
    assert outcome["status"] == "ok", outcome["error"]
    client = backed_up.registered.client
    [volume] = [v for v in client.describe_volumes() if v.name == name]
    assert sha256(backed_up.registered.volume_file(volume.volume_id)) == backed_up.sha[backed_up.data_volume]
    return dict(outcome)


def test_write_and_transfer_limits_are_each_honoured_on_a_200_mib_restore(backed_up: BackedUp) -> None:
    # One backup, two restores: each limit alone (they are separate limiters).
    for limit in ("write_limits", "transfer_limits"):
        name = f"limited-{limit.split('_')[0]}"
        outcome = _restore_with(backed_up, name, {limit: [{"rate": f"{LIMIT_MIB_S}MiB/s"}]})
        written = outcome["bytes_written"]
        assert written >= DATA_MIB * MIB  # random data: every byte is written
        floor = written / (LIMIT_MIB_S * MIB)
        elapsed = outcome["write_seconds"]
        assert floor * 0.9 <= elapsed, (
            f"{limit}: {written} bytes in {elapsed:.2f} s beats {LIMIT_MIB_S} MiB/s"
        )
        assert elapsed <= floor * 3 + 5, (
            f"{limit}: {written} bytes took {elapsed:.2f} s at {LIMIT_MIB_S} MiB/s"
        )
