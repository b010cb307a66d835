"""Engine tests of the backup options. The pool tests' fault-injecting blob store is shared
from tests/pools (one implementation of "a store that fails on demand")."""

from __future__ import annotations

import sys
from pathlib import Path

_POOLS_TESTS = str(Path(__file__).resolve().parents[1] / "pools")
if _POOLS_TESTS not in sys.path:
    sys.path.insert(0, _POOLS_TESTS)
