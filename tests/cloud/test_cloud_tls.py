"""HTTPS: certificates are verified by default, a CA file makes a private CA trusted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cloud_stub import ACCESS_KEY, SECRET_KEY, StubCloud, ok
from support.tls import make_certificates

from bingobackup.cloud import BingoCloudClient, CloudUnreachableError

CLUSTERS = ok(
    "DescribeClusters",
    "<clusterSet><item><clusterId>c-1</clusterId><clusterName>a</clusterName></item></clusterSet>",
)


@pytest.fixture
def tls_stub(tmp_path: Path) -> Iterator[tuple[StubCloud, Path]]:
    files = make_certificates(tmp_path)
    server = StubCloud(SECRET_KEY).start(tls=files.server_context)
    try:
        yield server, files.ca_file
    finally:
        server.stop()


def test_untrusted_certificate_fails_at_once_with_advice(tls_stub: tuple[StubCloud, Path]) -> None:
    stub, _ = tls_stub
    client = BingoCloudClient(stub.endpoint, ACCESS_KEY, SECRET_KEY, retry_window_seconds=30)

    with pytest.raises(CloudUnreachableError) as caught:
        list(client.describe_clusters())

    message = str(caught.value)
    assert "certificate not trusted" in message and "CA file" in message
    assert caught.value.attempts == 1, "a certificate problem is not retried"
    assert SECRET_KEY not in message


def test_ca_file_makes_the_private_ca_trusted(tls_stub: tuple[StubCloud, Path]) -> None:
    stub, ca_file = tls_stub
    stub.script(CLUSTERS)
    client = BingoCloudClient(stub.endpoint, ACCESS_KEY, SECRET_KEY, ca_file=str(ca_file))

    assert [c.cluster_id for c in client.describe_clusters()] == ["c-1"]
    assert stub.received[0].signature_ok


def test_verify_off_accepts_any_certificate(tls_stub: tuple[StubCloud, Path]) -> None:
    stub, _ = tls_stub
    stub.script(CLUSTERS)
    client = BingoCloudClient(stub.endpoint, ACCESS_KEY, SECRET_KEY, verify=False)

    assert [c.name for c in client.describe_clusters()] == ["a"]


def test_missing_ca_file_is_reported_when_the_client_is_made(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"CA file .*does not exist"):
        BingoCloudClient(
            "https://127.0.0.1:8443/", ACCESS_KEY, SECRET_KEY, ca_file=str(tmp_path / "none.pem")
        )
