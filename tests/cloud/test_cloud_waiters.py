"""Waiters poll until the wanted state and say exactly what they waited for when they give up."""

from __future__ import annotations

import pytest
from support.cloud_stub import SECRET_KEY, StubCloud, ok

from bingobackup.cloud import (
    BingoCloudClient,
    CloudError,
    CloudWaitTimeout,
    wait_for_instance,
    wait_for_snapshot,
    wait_for_volume,
)


def snapshot_reply(status: str) -> tuple[int, str]:
    return ok(
        "DescribeSnapshots",
        f"<snapshotSet><item><snapshotId>snap-1</snapshotId><volumeId>vol-1</volumeId>"
        f"<status>{status}</status></item></snapshotSet>",
    )


def volume_reply(status: str, attachment: str | None = None) -> tuple[int, str]:
    attached = (
        f"<attachmentSet><item><volumeId>vol-1</volumeId><instanceId>i-b</instanceId><device>/dev/vdc</device>"
        f"<status>{attachment}</status></item></attachmentSet>"
        if attachment
        else ""
    )
    return ok(
        "DescribeVolumes",
        f"<volumeSet><item><volumeId>vol-1</volumeId><size>1</size><status>{status}</status>{attached}"
        "</item></volumeSet>",
    )


def instance_reply(state: str, code: int) -> tuple[int, str]:
    return ok(
        "DescribeInstances",
        "<reservationSet><item><instancesSet><item><instanceId>i-1</instanceId><instanceName>vm</instanceName>"
        f"<instanceState><code>{code}</code><name>{state}</name></instanceState><instanceType>t</instanceType>"
        "<cpu>1</cpu><memory>512</memory><clusterId>c</clusterId><hostAddress>n@1.2.3.4</hostAddress>"
        "<storageId>st</storageId></item></instancesSet></item></reservationSet>",
    )


def test_snapshot_waiter_returns_the_completed_snapshot(
    stub: StubCloud, stub_client: BingoCloudClient
) -> None:
    stub.script(snapshot_reply("pending"), snapshot_reply("pending"), snapshot_reply("completed"))

    snap = wait_for_snapshot(stub_client, "snap-1", timeout=10, poll=0.01)

    assert snap.status == "completed"
    assert len(stub.received) == 3


def test_snapshot_waiter_timeout_names_id_state_and_time(
    stub: StubCloud, stub_client: BingoCloudClient
) -> None:
    stub.script(*[snapshot_reply("pending")] * 500)

    with pytest.raises(CloudWaitTimeout) as caught:
        wait_for_snapshot(stub_client, "snap-1", timeout=0.3, poll=0.02)

    err = caught.value
    assert (err.resource_id, err.wanted_state, err.last_state) == ("snap-1", "completed", "pending")
    assert err.waited_seconds >= 0.3
    message = str(err)
    assert "snap-1" in message and "'completed'" in message and "'pending'" in message
    assert "timed out after 0.3 s" in message
    assert SECRET_KEY not in message


def test_snapshot_in_error_fails_at_once(stub: StubCloud, stub_client: BingoCloudClient) -> None:
    stub.script(snapshot_reply("pending"), snapshot_reply("error"))

    with pytest.raises(CloudError, match="snap-1 went to state 'error'"):
        wait_for_snapshot(stub_client, "snap-1", timeout=10, poll=0.01)


def test_volume_in_use_waits_for_the_attachment_to_complete(
    stub: StubCloud, stub_client: BingoCloudClient
) -> None:
    stub.script(
        volume_reply("available"), volume_reply("in-use", "attaching"), volume_reply("in-use", "attached")
    )

    volume = wait_for_volume(stub_client, "vol-1", "in-use", timeout=10, poll=0.01)

    assert [a.status for a in volume.attachments] == ["attached"]
    assert len(stub.received) == 3


def test_volume_timeout_reports_the_pending_attachment(
    stub: StubCloud, stub_client: BingoCloudClient
) -> None:
    stub.script(*[volume_reply("in-use", "attaching")] * 500)

    with pytest.raises(CloudWaitTimeout, match=r"volume vol-1 .*'in-use'.*'in-use \(attachment attaching\)'"):
        wait_for_volume(stub_client, "vol-1", "in-use", timeout=0.2, poll=0.02)


def test_instance_waiter_and_dead_end(stub: StubCloud, stub_client: BingoCloudClient) -> None:
    stub.script(instance_reply("stopping", 64), instance_reply("stopped", 80))
    assert wait_for_instance(stub_client, "i-1", "stopped", timeout=10, poll=0.01).state.code == 80

    stub.script(instance_reply("pending", 0), instance_reply("terminated", 48))
    with pytest.raises(CloudError, match="i-1 went to state 'terminated' while waiting for 'running'"):
        wait_for_instance(stub_client, "i-1", "running", timeout=10, poll=0.01)
