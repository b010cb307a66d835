from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from backends import LocalCase, S3Case, StoreCase
from pool_support import CHUNK, COMBOS, FAST_SCRYPT_N, Variant, combo_id

from bingobackup.pools import Pool, create_pool_in

# Where a pool's blobs live; every pool test runs over each (object storage: moto's S3 server
# on 127.0.0.1 behind a fault-injecting proxy).
BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], StoreCase]] = {
    "localdir": lambda request, tmp: LocalCase(tmp / "pool", "pool"),
    "s3": lambda request, tmp: S3Case(request.getfixturevalue("moto_s3"), "pool"),
}


@pytest.fixture(params=COMBOS, ids=combo_id)
def combo(request: pytest.FixtureRequest) -> tuple[Variant, str]:
    return request.param


@pytest.fixture
def variant(combo: tuple[Variant, str]) -> Variant:
    return combo[0]


@pytest.fixture
def case(combo: tuple[Variant, str], request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreCase]:
    made = BACKENDS[combo[1]](request, tmp_path)
    yield made
    made.close()


@pytest.fixture
def pool(variant: Variant, case: StoreCase) -> Pool:
    return create_pool_in(
        case.store,
        variant.kind,  # type: ignore[arg-type]
        chunk_size=CHUNK,
        encrypted=variant.encrypted,
        passphrase=variant.passphrase,
        compression=variant.compression,  # type: ignore[arg-type]
        scrypt_n=FAST_SCRYPT_N,
    )
