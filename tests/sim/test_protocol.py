"""The request checks BingoCloud makes, answered in EC2 error shapes with the contract's statuses."""

from __future__ import annotations

import time
import urllib.parse

from support.sim import ACCESS_KEY, SECRET_KEY, call, ok, post

from bingobackup.cloud import signing
from bingobackup.sim.server import RunningSimulator


def test_signed_request_is_answered_with_a_request_id(demo: RunningSimulator) -> None:
    reply = ok(demo.endpoint, "DescribeClusters")

    assert reply.root.tag == "DescribeClustersResponse"
    assert len(reply.text("requestId")) == 36
    assert [i.findtext("clusterName") for i in reply.items("clusterSet")] == ["cluster-a", "cluster-b"]


def test_wrong_secret_is_403_signature_does_not_match(demo: RunningSimulator) -> None:
    reply = call(demo.endpoint, "DescribeClusters", secret_key="not-the-secret")

    assert (reply.status, reply.code) == (403, "SignatureDoesNotMatch")
    assert reply.text("RequestID")
    assert SECRET_KEY not in reply.body.decode()


def test_unknown_access_key_is_401(demo: RunningSimulator) -> None:
    reply = call(demo.endpoint, "DescribeClusters", access_key="AKUNKNOWN0000042")

    assert (reply.status, reply.code) == (401, "AuthFailure")
    # The reply names the refused key masked: it ends up in clients' errors and logs.
    assert "AKUN…0042" in reply.message and "AKUNKNOWN0000042" not in reply.message


def test_unknown_action_missing_parameter_and_unknown_id(demo: RunningSimulator) -> None:
    unknown = call(demo.endpoint, "MakeCoffee")
    missing = call(demo.endpoint, "AttachVolume", {"VolumeId": "vol-1", "InstanceId": "i-1"})
    not_found = call(demo.endpoint, "DescribeVolumes", {"VolumeId.1": "vol-NOPE"})

    assert (unknown.status, unknown.code) == (400, "InvalidAction")
    assert "MakeCoffee" in unknown.message
    # The volume is looked up first; with a real volume the missing Device is named.
    assert (missing.status, missing.code) == (400, "InvalidVolume.NotFound")
    volume_id = ok(demo.endpoint, "DescribeVolumes").items("volumeSet")[0].findtext("volumeId") or ""
    missing = call(demo.endpoint, "AttachVolume", {"VolumeId": volume_id, "InstanceId": "i-1"})
    assert (missing.status, missing.code) == (400, "MissingParameter")
    assert "Device" in missing.message
    assert (not_found.status, not_found.code) == (400, "InvalidVolume.NotFound")
    assert "vol-NOPE" in not_found.message and not_found.text("Errors/Error/ErrorNo") == "404"


def test_stale_timestamp_is_request_expired(demo: RunningSimulator) -> None:
    host = urllib.parse.urlsplit(demo.endpoint).netloc
    params = signing.signed_params("DescribeClusters", {}, ACCESS_KEY, SECRET_KEY, host)
    params["Timestamp"] = signing.cluster_timestamp(time.time() - 3600)
    params["Signature"] = signing.signature(SECRET_KEY, "POST", host, "/", params)

    reply = post(demo.endpoint, params)

    assert (reply.status, reply.code) == (400, "RequestExpired")


def test_paging_returns_every_item_once_and_filters_apply(demo: RunningSimulator) -> None:
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        params = {"MaxRecords": "3", **({"NextToken": token} if token else {})}
        reply = ok(demo.endpoint, "DescribeVolumes", params)
        seen += [i.findtext("volumeId") or "" for i in reply.items("volumeSet")]
        pages += 1
        token = reply.root.findtext("nextToken")
        if not token:
            break
    every = [i.findtext("volumeId") for i in ok(demo.endpoint, "DescribeVolumes").items("volumeSet")]
    cluster_b = ok(
        demo.endpoint, "DescribeNodes", {"Filter.1.Name": "cluster-id", "Filter.1.Value.1": "cc02"}
    ).items("nodeSet")
    bad_filter = call(demo.endpoint, "DescribeNodes", {"Filter.1.Name": "colour", "Filter.1.Value.1": "red"})
    too_many = call(demo.endpoint, "DescribeVolumes", {"MaxRecords": "5000"})

    assert seen == every and pages == -(-len(every) // 3) and len(set(seen)) == len(seen)
    assert {n.findtext("clusterId") for n in cluster_b} == {"cc02"} and len(cluster_b) == 2
    assert (bad_filter.code, too_many.code) == ("InvalidParameterValue", "InvalidParameterValue")
    assert "colour" in bad_filter.message and "MaxRecords" in too_many.message
