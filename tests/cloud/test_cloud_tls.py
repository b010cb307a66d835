"""HTTPS: certificates are verified by default, a CA file makes a private CA trusted."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cloud_stub import ACCESS_KEY, SECRET_KEY, StubCloud, ok
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bingobackup.cloud import BingoCloudClient, CloudUnreachableError

CLUSTERS = ok(
    "DescribeClusters",
    "<clusterSet><item><clusterId>c-1</clusterId><clusterName>a</clusterName></item></clusterSet>",
)


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    signer: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture
def tls_stub(tmp_path: Path) -> Iterator[tuple[StubCloud, Path]]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("bingobackup test CA", ca_key, None, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _certificate("127.0.0.1", server_key, ca, ca_key)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = tmp_path / "server.pem"
    chain.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        + server_cert.public_bytes(serialization.Encoding.PEM)
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    server = StubCloud(SECRET_KEY).start(tls=context)
    try:
        yield server, ca_file
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
