"""Sizes as people write them (`500GiB`, `1.5 TiB`): job specs, pool options and the CLI."""

from __future__ import annotations

import re

_UNITS = {"B": 1, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]iB|B)\s*$", re.IGNORECASE)


def parse_size(value: str | int, field: str) -> int:
    """`500GiB`, `1.5 TiB`, `512 KiB` → bytes; a bare number is bytes."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if not match:
        raise ValueError(
            f"{field} must be a size such as '500GiB' (units B, KiB, MiB, GiB, TiB), got {value!r}"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])
