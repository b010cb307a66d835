"""Pools written by each format version (tests/fixtures/golden-pool-vN, made once by
make_golden_pool_vN.py) must stay readable by every later version of bingobackup; those from
before sealed manifests (version 3) with a warning, until `pool upgrade` moves them forward."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
from support.pools import read_back, tree_snapshot

from bingobackup.format.compression import CompressionId
from bingobackup.format.envelope import EnvelopeHeader
from bingobackup.format.errors import WrongPassphraseError
from bingobackup.pools import open_pool

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GOLDEN = FIXTURES / "golden-pool-v1"
VERSIONS = {1: "golden-pool-v1", 2: "golden-pool-v2", 3: "golden-pool-v3"}
POOLS = [
    (v, name)
    for v, d in VERSIONS.items()
    for name in json.loads((FIXTURES / d / "expected.json").read_text())["pools"]
]


@pytest.mark.parametrize(("version", "name"), POOLS, ids=[f"v{v}-{n}" for v, n in POOLS])
def test_golden_pool_reads_back_the_same_bytes(
    version: int, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    golden = FIXTURES / VERSIONS[version]
    expected = json.loads((golden / "expected.json").read_text())
    before = tree_snapshot(golden)
    info = expected["pools"][name]
    pool = open_pool(golden / name, expected["passphrase"] if info["encrypted"] else None)
    assert (pool.kind, pool.config.encrypted, pool.config.format_version, expected["format_version"]) == (
        info["kind"],
        info["encrypted"],
        version,
        version,
    )

    with caplog.at_level(logging.WARNING, "bingobackup.pools"):
        manifest = pool.load_manifest(expected["set_id"], expected["volume_id"])
    unsealed = [r.getMessage() for r in caplog.records if "not sealed" in r.getMessage()]
    if version < 3:  # readable, with a warning saying how to seal them
        assert unsealed == [
            f"pool {name} has format version {version}: its manifests are not sealed, so a changed "
            f"chunk offset in them would go unnoticed; run `bingobackup pool upgrade {name}` to seal them"
        ]
    else:
        assert unsealed == []
    data = read_back(pool, manifest)
    assert len(data) == expected["size_bytes"]
    assert hashlib.sha256(data).hexdigest() == expected["sha256"]

    # Both compression ids occur in the fixture, so both stay decodable.
    ids = {EnvelopeHeader.parse(pool._read_envelope(ref)).compression for ref in manifest.chunks}
    assert ids == {CompressionId.NONE, CompressionId.ZSTD}
    assert tree_snapshot(golden) == before  # reading changes nothing


def test_golden_encrypted_pool_refuses_another_passphrase() -> None:
    with pytest.raises(WrongPassphraseError, match="does not open pool dedup-aes"):
        open_pool(GOLDEN / "dedup-aes", "Golden")
