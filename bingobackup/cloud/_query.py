"""Query-API parameter shapes: 1-based lists and filters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

FilterValues = str | Sequence[str]


def list_params(prefix: str, values: Sequence[str]) -> dict[str, str]:
    """`InstanceId.1=…&InstanceId.2=…`."""
    if isinstance(values, str):  # a lone id passed where a list was meant
        values = [values]
    return {f"{prefix}.{n}": value for n, value in enumerate(values, start=1)}


def filter_params(filters: Mapping[str, FilterValues] | None) -> dict[str, str]:
    """`Filter.N.Name` + `Filter.N.Value.M`, in the order given; None/empty filters vanish."""
    params: dict[str, str] = {}
    n = 0
    for name, raw in (filters or {}).items():
        values = [raw] if isinstance(raw, str) else list(raw)
        if not values:
            continue
        n += 1
        params[f"Filter.{n}.Name"] = name
        params.update(list_params(f"Filter.{n}.Value", values))
    return params


def optional_params(values: Mapping[str, str | int | bool | None]) -> dict[str, str]:
    """Named parameters with None dropped; booleans written `true`/`false`."""
    out: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        out[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out
