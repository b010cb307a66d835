"""Whatever a cloud answers, the client returns models or raises one of our typed errors.

Responses in the shapes of docs/cloud-api.md are mutated the ways a real BingoCloud may
differ from the simulator (elements missing, extra, renamed or in the other casing, empty or
odd text, the body cut short) and fed to the client's Describe* calls; the only exception
allowed out is a `CloudError` (bingobackup/cloud/errors.py) with a message.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.cloud_fuzz import ODD_TEXT, RESPONSES, mutate
from support.cloud_stub import ACCESS_KEY, SECRET_KEY, error, ok

from bingobackup.cloud import BingoCloudClient, CloudError
from bingobackup.cloud.transport import Reply


def _client() -> BingoCloudClient:
    return BingoCloudClient("http://127.0.0.1:9/", ACCESS_KEY, SECRET_KEY, retry_window_seconds=0)


def _call(method: str, status: int, body: bytes) -> None:
    with mock.patch("bingobackup.cloud.client.post_form", return_value=Reply(status, body)):
        list(getattr(_client(), method)())


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(method=st.sampled_from(sorted(RESPONSES)), data=st.data())
def test_mutated_responses_give_models_or_typed_errors(method: str, data: st.DataObject) -> None:
    action, inner = RESPONSES[method]
    root = ET.fromstring(ok(action, inner)[1])
    mutate(root, data.draw)
    body = ET.tostring(root, encoding="utf-8")
    if data.draw(st.booleans()):
        body = body[: data.draw(st.integers(0, len(body)))]
    try:
        _call(method, 200, body)
    except CloudError as exc:
        assert str(exc)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    status=st.sampled_from([400, 401, 403, 404, 500, 503]),
    code=ODD_TEXT,
    message=ODD_TEXT,
    cut=st.one_of(st.none(), st.integers(0, 200)),
)
def test_mutated_error_bodies_give_typed_errors(
    status: int, code: str, message: str, cut: int | None
) -> None:
    root = ET.fromstring(error(status, "Code", "Message")[1])
    root.find("Errors/Error/Code").text = code  # type: ignore[union-attr]
    root.find("Errors/Error/Message").text = message  # type: ignore[union-attr]
    body = ET.tostring(root, encoding="utf-8")[:cut]
    try:
        _call("describe_clusters", status, body)
    except CloudError as exc:
        assert exc.http_status == status and str(exc)
    else:
        raise AssertionError(f"HTTP {status} was taken for a success")


def test_both_casings_item_lists_of_one_and_extra_elements_read_the_same() -> None:
    """What the public client copes with (cloudmux bingo.go): `NextToken` or `nextToken`, inside
    the set or beside it, elements in either casing, one `item`, elements we do not know."""
    pages = [
        ok(
            "DescribeVolumes",
            "<VolumeSet><item><VolumeId>vol-1</VolumeId><Size>1</Size><Status>available</Status>"
            "<mirrorStatus>none</mirrorStatus><volumeName/></item><NextToken>p2</NextToken></VolumeSet>",
        ),
        ok(
            "DescribeVolumes",
            "<volumeSet><item><volumeId>vol-2</volumeId><size>2</size><status>available</status>"
            "<createTime></createTime><isRoot/></item></volumeSet>",
        ),
    ]
    replies = iter(Reply(200, body.encode()) for _, body in pages)
    with mock.patch("bingobackup.cloud.client.post_form", side_effect=lambda *a, **k: next(replies)):
        volumes = list(_client().describe_volumes())
    assert [(v.volume_id, v.size_gib, v.name, v.create_time) for v in volumes] == [
        ("vol-1", 1, "", None),
        ("vol-2", 2, "", None),
    ]


def test_instance_in_public_client_shape_reads_cpu_memory_and_cluster() -> None:
    """cloudmux instance.go reads `vmtype_cpu`/`vmtype_mem` and the placement zone (its
    clusters), and a real cloud sends no osName/osVersion/architecture."""
    item = (
        "<item><instanceId>i-1</instanceId><instanceName>bk</instanceName><imageId>ami-1</imageId>"
        "<instanceState><code>16</code><name>running</name></instanceState><instanceType>m1</instanceType>"
        "<vmtype_cpu>2</vmtype_cpu><vmtype_mem>2048</vmtype_mem><placement><availabilityZone>c-1"
        "</availabilityZone></placement><hostAddress>n1@10.0.0.1</hostAddress><storageId>st-1</storageId>"
        "<platform>linux</platform></item>"
    )
    body = ok(
        "DescribeInstances",
        f"<reservationSet><item><instancesSet>{item}</instancesSet></item></reservationSet>",
    )
    with mock.patch("bingobackup.cloud.client.post_form", return_value=Reply(200, body[1].encode())):
        vm = _client().get_instance("i-1")
    assert (vm.cpu, vm.memory_mib, vm.cluster_id, vm.os_name, vm.os_version) == (2, 2048, "c-1", "", "")


def test_storage_space_in_gib_as_the_public_client_reads_it() -> None:
    """cloudmux storage.go takes spaceMax/spaceUsed as GiB; a value no datastore could have in
    bytes is read that way, a byte count is left alone."""
    body = ok(
        "DescribeStorages",
        "<storageSet><item><storageId>st-g</storageId><storageName>g</storageName><clusterId>c</clusterId>"
        "<spaceMax>2048</spaceMax><spaceUsed>512</spaceUsed></item><item><storageId>st-b</storageId>"
        "<storageName>b</storageName><clusterId>c</clusterId><spaceMax>2199023255552</spaceMax>"
        "<spaceUsed>512</spaceUsed></item></storageSet>",
    )[1].encode()
    with mock.patch("bingobackup.cloud.client.post_form", return_value=Reply(200, body)):
        in_gib, in_bytes = _client().describe_storages()
    assert (in_gib.space_max_bytes, in_gib.space_used_bytes) == (2048 << 30, 512 << 30)
    assert (in_bytes.space_max_bytes, in_bytes.space_used_bytes) == (2 << 40, 512)


def test_a_repeated_next_token_stops_paging_with_a_typed_error() -> None:
    body = ok("DescribeClusters", "<clusterSet/><nextToken>same</nextToken>")[1].encode()
    with pytest.raises(CloudError, match="nextToken it had already sent"):
        _call("describe_clusters", 200, body)
