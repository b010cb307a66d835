from __future__ import annotations

from pathlib import Path

import pytest
from pool_support import CHUNK, FAST_SCRYPT_N, VARIANTS, Variant

from bingobackup.pools import Pool, create_pool


@pytest.fixture(params=VARIANTS, ids=[v.id for v in VARIANTS])
def variant(request: pytest.FixtureRequest) -> Variant:
    return request.param


@pytest.fixture
def pool_dir(tmp_path: Path) -> Path:
    return tmp_path / "pool"


@pytest.fixture
def pool(variant: Variant, pool_dir: Path) -> Pool:
    return create_pool(
        pool_dir,
        variant.kind,  # type: ignore[arg-type]
        chunk_size=CHUNK,
        encrypted=variant.encrypted,
        passphrase=variant.passphrase,
        compression=variant.compression,  # type: ignore[arg-type]
        scrypt_n=FAST_SCRYPT_N,
    )
