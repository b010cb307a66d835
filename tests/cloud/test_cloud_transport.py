"""The client's transport against a scripted server: signing, errors, retries, paging."""

from __future__ import annotations

import logging
import pickle
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support.cloud_stub import ACCESS_KEY, DROP, SECRET_KEY, StubCloud, error, ok

from bingobackup.cloud import (
    BingoCloudClient,
    CloudAuthError,
    CloudError,
    CloudInvalidRequest,
    CloudNotFoundError,
    CloudRetryableError,
    CloudUnreachableError,
)

CLUSTERS_ONE = ok(
    "DescribeClusters",
    "<clusterSet><item><clusterId>c-1</clusterId><clusterName>cluster-a</clusterName>"
    "<status>available</status></item></clusterSet>",
)


def client_for(stub: StubCloud, **kwargs: Any) -> BingoCloudClient:
    return BingoCloudClient(stub.endpoint, ACCESS_KEY, SECRET_KEY, **kwargs)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET_KEY not in text
        assert "Signature=" not in text


def test_requests_are_signed_posts_the_server_can_verify(stub: StubCloud) -> None:
    stub.script(CLUSTERS_ONE)
    clusters = list(client_for(stub).describe_clusters(["c-1"]))

    assert [c.name for c in clusters] == ["cluster-a"]
    (request,) = stub.received
    assert request.signature_ok, "the server could not verify the SigV2 signature"
    assert request.host == stub.endpoint.split("//")[1].rstrip("/")
    params = request.params
    assert params["Action"] == "DescribeClusters"
    assert params["Version"] == "2009-08-15"
    assert params["SignatureMethod"] == "HmacSHA256"
    assert params["SignatureVersion"] == "2"
    assert params["AWSAccessKeyId"] == ACCESS_KEY
    assert params["ClusterId.1"] == "c-1"
    # The public client's form: wall time in the cloud's zone (default Asia/Shanghai, UTC+8 all
    # year), with milliseconds and a literal Z.
    sent = datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
    shanghai_now = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=8)
    assert abs((sent - shanghai_now).total_seconds()) < 120


def test_ids_and_filters_become_numbered_parameters(stub: StubCloud) -> None:
    stub.script(ok("DescribeInstances", "<reservationSet/>"))
    found = list(
        client_for(stub).describe_instances(
            ["i-1", "i-2"], filters={"node-id": "n1@10.0.0.1", "instance-id": ["i-1", "i-2"]}
        )
    )

    assert found == []
    params = stub.received[0].params
    assert params["InstanceId.1"] == "i-1" and params["InstanceId.2"] == "i-2"
    assert params["Filter.1.Name"] == "node-id"
    assert params["Filter.1.Value.1"] == "n1@10.0.0.1"
    assert params["Filter.2.Name"] == "instance-id"
    assert (params["Filter.2.Value.1"], params["Filter.2.Value.2"]) == ("i-1", "i-2")
    assert stub.received[0].signature_ok


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (401, "AuthFailure", CloudAuthError),
        (403, "SignatureDoesNotMatch", CloudAuthError),
        (400, "RequestExpired", CloudAuthError),
        (400, "InvalidVolume.NotFound", CloudNotFoundError),
        (400, "InvalidInstanceID.NotFound", CloudNotFoundError),
        (400, "InvalidInstanceType", CloudNotFoundError),
        (400, "MissingParameter", CloudInvalidRequest),
        (400, "InvalidParameterValue", CloudInvalidRequest),
        (400, "InvalidAction", CloudInvalidRequest),
        (400, "IncorrectState", CloudInvalidRequest),
        (400, "VolumeInUse", CloudInvalidRequest),
        (400, "InsufficientStorageCapacity", CloudInvalidRequest),
    ],
)
def test_error_responses_raise_typed_errors_at_once(
    stub: StubCloud, status: int, code: str, expected: type[CloudError]
) -> None:
    stub.script(error(status, code, f"message for {code}", request_id="rid-42", error_no=str(status)))

    with pytest.raises(expected) as caught:
        client_for(stub).get_volume("vol-1")

    err = caught.value
    assert (err.code, err.message, err.request_id) == (code, f"message for {code}", "rid-42")
    assert (err.http_status, err.action) == (status, "DescribeVolumes")
    assert code in str(err) and "rid-42" in str(err)
    assert len(stub.received) == 1, "a non-retryable error must not be retried"
    assert_no_secret(str(err), repr(err))


@pytest.mark.parametrize(
    ("status", "code"),
    [(503, "RequestLimitExceeded"), (500, "InternalError"), (503, "Unavailable"), (502, "")],
)
def test_throttling_and_server_faults_are_retried_until_success(
    stub: StubCloud, status: int, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    failure = error(status, code, "slow down") if code else (status, "<html>Bad Gateway</html>")
    stub.script(failure, failure, CLUSTERS_ONE)

    with caplog.at_level(logging.WARNING, logger="bingobackup.cloud"):
        clusters = list(client_for(stub, retry_window_seconds=10).describe_clusters())

    assert [c.cluster_id for c in clusters] == ["c-1"]
    assert stub.actions == ["DescribeClusters"] * 3
    assert all(r.signature_ok for r in stub.received), "each retry is signed afresh"
    retries = [r for r in caplog.records if r.name == "bingobackup.cloud"]
    assert len(retries) == 2
    assert_no_secret(caplog.text)


def test_persistent_server_error_gives_up_after_the_window(stub: StubCloud) -> None:
    stub.script(*[error(500, "InternalError", "boom", request_id=f"r{n}") for n in range(200)])

    with pytest.raises(CloudRetryableError) as caught:
        client_for(stub, retry_window_seconds=1.0).describe_clusters().__next__()

    err = caught.value
    attempts = len(stub.received)
    assert attempts > 1
    assert err.attempts == attempts
    # No new attempt starts after the 1 s window; the last one may still be answering then.
    assert 0 < err.elapsed_seconds < 1.0 + 5.0
    assert f"gave up after {attempts} attempts over" in str(err)
    assert err.code == "InternalError" and err.request_id == f"r{attempts - 1}"
    assert_no_secret(str(err))


def test_unparseable_5xx_body_is_retryable_and_quoted(stub: StubCloud) -> None:
    stub.script((502, "<html><body>Bad   Gateway</body></html>"))

    with pytest.raises(CloudRetryableError) as caught:
        list(client_for(stub, retry_window_seconds=0).describe_clusters())

    assert caught.value.http_status == 502
    assert "Bad Gateway" in str(caught.value)


def test_dropped_connection_is_retried(stub: StubCloud) -> None:
    stub.script(DROP, CLUSTERS_ONE)

    clusters = list(client_for(stub, retry_window_seconds=10).describe_clusters())

    assert [c.name for c in clusters] == ["cluster-a"]
    assert len(stub.received) == 2


def test_unreachable_endpoint_names_it_and_says_what_to_check() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = BingoCloudClient(f"http://127.0.0.1:{port}/", ACCESS_KEY, SECRET_KEY, retry_window_seconds=0.5)

    with pytest.raises(CloudUnreachableError) as caught:
        list(client.describe_clusters())

    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "address, port and SSL setting" in message
    assert caught.value.attempts > 1
    assert_no_secret(message)


def test_auth_error_tells_the_user_to_fix_the_keys_without_showing_them(stub: StubCloud) -> None:
    stub.script(error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match."))

    with pytest.raises(CloudAuthError) as caught:
        list(client_for(stub).describe_clusters())

    assert "bingobackup cloud settings" in str(caught.value)
    assert "Access Key" in str(caught.value) and "Secret Key" in str(caught.value)
    assert_no_secret(str(caught.value), repr(caught.value))


def test_paging_follows_next_token_across_three_pages(stub: StubCloud) -> None:
    def page(n: int, token: str | None) -> tuple[int, str]:
        ids = [f"vol-{n}{k}" for k in range(2)]
        items = "".join(
            f"<item><volumeId>{v}</volumeId><size>1</size><status>available</status></item>" for v in ids
        )
        more = f"<nextToken>{token}</nextToken>" if token else ""
        return ok("DescribeVolumes", f"<volumeSet>{items}</volumeSet>{more}")

    stub.script(page(1, "t-2"), page(2, "t-3"), page(3, None))

    volumes = list(client_for(stub, page_size=2).describe_volumes(filters={"status": "available"}))

    assert [v.volume_id for v in volumes] == ["vol-10", "vol-11", "vol-20", "vol-21", "vol-30", "vol-31"]
    assert [r.params.get("MaxRecords") for r in stub.received] == ["2", "2", "2"]
    assert [r.params.get("NextToken") for r in stub.received] == [None, "t-2", "t-3"]
    assert all(r.params["Filter.1.Value.1"] == "available" for r in stub.received)


def test_repr_and_pickled_state_never_show_the_secret(stub: StubCloud) -> None:
    client = client_for(stub)

    assert (
        repr(client)
        == f"BingoCloudClient(endpoint={stub.endpoint!r}, access_key='{ACCESS_KEY[:4]}…{ACCESS_KEY[-4:]}')"
    )
    assert SECRET_KEY not in str(vars(client)) and ACCESS_KEY not in repr(client)
    stub.script(CLUSTERS_ONE)
    revived: BingoCloudClient = pickle.loads(pickle.dumps(client))
    assert [c.cluster_id for c in revived.describe_clusters()] == ["c-1"]
    assert stub.received[0].signature_ok


def test_errors_survive_pickling_with_their_fields(stub: StubCloud) -> None:
    stub.script(error(400, "InvalidSnapshot.NotFound", "The snapshot 'snap-9' does not exist.", "rid-7"))
    with pytest.raises(CloudNotFoundError) as caught:
        client_for(stub).get_snapshot("snap-9")

    revived = pickle.loads(pickle.dumps(caught.value))

    assert type(revived) is CloudNotFoundError
    assert (revived.code, revived.request_id, revived.http_status) == (
        "InvalidSnapshot.NotFound",
        "rid-7",
        400,
    )
    assert str(revived) == str(caught.value)
