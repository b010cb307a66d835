"""SigV2 must match an independent implementation, or a real BingoCloud would refuse us."""

from botocore.auth import SigV2Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bingobackup.cloud import signing


def test_signature_matches_botocore_sigv2() -> None:
    params = {
        "Action": "DescribeInstances",
        "Version": "2009-08-15",
        "AWSAccessKeyId": "AKID",
        "SignatureVersion": "2",
        "SignatureMethod": "HmacSHA256",
        "Timestamp": "2026-11-25T08:00:00Z",
        "Filter.1.Name": "name",
        "Filter.1.Value.1": "web server/ä ~*",
        "InstanceId.1": "i-49ADD723",
    }
    request = AWSRequest(method="POST", url="http://10.0.0.5:8080/", data=dict(params))
    _, expected = SigV2Auth(Credentials("AKID", "s3cr3t/key+")).calc_signature(request, dict(params))
    assert signing.signature("s3cr3t/key+", "POST", "10.0.0.5:8080", "/", params) == expected


def test_verify_rejects_other_secret() -> None:
    full = signing.signed_params("DescribeClusters", {}, "AKID", "right", "127.0.0.1:1")
    assert signing.verify("right", "POST", "127.0.0.1:1", "/", full)
    assert not signing.verify("wrong", "POST", "127.0.0.1:1", "/", full)
