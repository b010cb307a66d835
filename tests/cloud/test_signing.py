"""SigV2 must match independent implementations, or a real BingoCloud would refuse us."""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

from botocore.auth import SigV2Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from support.testkeys import ACCESS_KEY, SECRET_KEY

from bingobackup.cloud import BingoCloudClient, signing
from bingobackup.sim.server import RunningSimulator


def test_signature_matches_botocore_sigv2() -> None:
    params = {
        "Action": "DescribeInstances",
        "Version": "2009-08-15",
        "AWSAccessKeyId": "AKID",
        "SignatureVersion": "2",
        "SignatureMethod": "HmacSHA256",
        "Timestamp": "2026-11-25T08:00:00.000Z",
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


def public_client_body(endpoint: str, action: str, params: dict[str, str]) -> bytes:
    """The body the public BingoCloud client POSTs, re-implemented from its `invoke` and `sign`
    (yunionio/cloudmux pkg/multicloud/bingocloud/bingo.go), sharing no code with ours."""

    def encode(key: str, value: str) -> str:  # Go: url.Values{k: {v}}.Encode() (QueryEscape)
        return urllib.parse.urlencode({key: value})

    query = encode("Action", action)
    for key, value in params.items():
        query += "&" + encode(key, value)
    # time.Now().In(Asia/Shanghai).Format("2006-01-02T15:04:05.000Z"); Shanghai is UTC+8 all year.
    now = datetime.now(timezone(timedelta(hours=8)))
    query += "&" + encode("Timestamp", now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z")
    query += "&" + encode("AWSAccessKeyId", ACCESS_KEY)
    query += "&" + encode("Version", "2009-08-15")
    query += "&" + encode("SignatureVersion", "2")
    query += "&" + encode("SignatureMethod", "HmacSHA256")
    # sign(): the encoded k=v items sorted by key, under "POST\n<host>\n<path>\n".
    items = sorted(query.split("&"), key=lambda item: item.split("=")[0])
    uri = urllib.parse.urlsplit(endpoint)
    string_to_sign = f"POST\n{uri.netloc}\n{uri.path or '/'}\n" + "&".join(items)
    digest = hmac.new(SECRET_KEY.encode(), string_to_sign.encode(), hashlib.sha256).digest()
    query += "&" + encode("Signature", base64.b64encode(digest).decode())
    return query.encode()


def test_simulator_accepts_the_public_client_whatever_the_machine_zone(
    machine_tz: str, sim: RunningSimulator
) -> None:
    client = BingoCloudClient(sim.endpoint, ACCESS_KEY, SECRET_KEY)
    wanted = next(i for i in client.describe_instances() if i.name.startswith("backup-host-"))
    # A value with a space, a slash and a non-ASCII letter: the public client signs '+' for the space.
    params = {
        "Filter.1.Name": "name",
        "Filter.1.Value.1": wanted.name,
        "Filter.1.Value.2": "no such vm/ä ~*",
    }

    request = urllib.request.Request(
        sim.endpoint, data=public_client_body(sim.endpoint, "DescribeInstances", params)
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        status, root = reply.status, ET.fromstring(reply.read())

    found = [e.text for e in root.iter() if e.tag.endswith("}instanceId")]
    assert (status, found) == (200, [wanted.instance_id])
