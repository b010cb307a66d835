from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.pool_cases import PoolCase, case_for
from support.pools import COMBOS, Variant, combo_id

from bingobackup.pools import Pool


@pytest.fixture(params=COMBOS, ids=combo_id)
def combo(request: pytest.FixtureRequest) -> tuple[str, Variant]:
    """(pool kind, variant): every pool test runs over each of the six kinds (support/pool_cases.py)."""
    return request.param


@pytest.fixture
def variant(combo: tuple[str, Variant]) -> Variant:
    return combo[1]


@pytest.fixture
def case(combo: tuple[str, Variant], request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PoolCase]:
    yield from case_for(combo[0], combo[1], request, tmp_path)


@pytest.fixture
def pool(case: PoolCase) -> Pool:
    return case.pool
