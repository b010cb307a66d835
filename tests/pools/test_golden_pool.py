"""A pool written by format version 1 (tests/fixtures/golden-pool-v1, made once by
make_golden_pool_v1.py) must stay readable by every later version of bingobackup."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from pool_support import read_back, tree_snapshot

from bingobackup.format.compression import CompressionId
from bingobackup.format.envelope import EnvelopeHeader
from bingobackup.format.errors import WrongPassphraseError
from bingobackup.pools import open_pool

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "golden-pool-v1"
EXPECTED = json.loads((GOLDEN / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED["pools"]))
def test_golden_pool_reads_back_the_same_bytes(name: str) -> None:
    before = tree_snapshot(GOLDEN)
    info = EXPECTED["pools"][name]
    pool = open_pool(GOLDEN / name, EXPECTED["passphrase"] if info["encrypted"] else None)
    assert (pool.kind, pool.config.encrypted, pool.config.format_version) == (
        info["kind"],
        info["encrypted"],
        1,
    )

    manifest = pool.load_manifest(EXPECTED["set_id"], EXPECTED["volume_id"])
    data = read_back(pool, manifest)
    assert len(data) == EXPECTED["size_bytes"]
    assert hashlib.sha256(data).hexdigest() == EXPECTED["sha256"]

    # Both compression ids occur in the fixture, so both stay decodable.
    ids = {EnvelopeHeader.parse(pool._read_envelope(ref)).compression for ref in manifest.chunks}
    assert ids == {CompressionId.NONE, CompressionId.ZSTD}
    assert tree_snapshot(GOLDEN) == before  # reading changes nothing


def test_golden_encrypted_pool_refuses_another_passphrase() -> None:
    with pytest.raises(WrongPassphraseError, match="does not open pool dedup-aes"):
        open_pool(GOLDEN / "dedup-aes", "Golden")
