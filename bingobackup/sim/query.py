"""Reading Query-API parameters: required values, `Name.N` lists, filters and paging."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from bingobackup.sim.errors import SimApiError, invalid, not_found

T = TypeVar("T")
MAX_RECORDS = 1000


class Params:
    """The form parameters of one request."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self.values.get(name)
        return default if value is None or value == "" else value

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise SimApiError("MissingParameter", f"The request must contain the parameter {name}")
        return value

    def integer(self, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
        raw = self.get(name)
        if raw is None:
            return None
        try:
            value = int(raw)
        except ValueError:
            raise invalid(name, raw, "not an integer") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise invalid(name, raw, f"must be between {minimum} and {maximum}")
        return value

    def boolean(self, name: str) -> bool:
        return (self.get(name) or "").lower() in ("true", "1", "yes")

    def numbered(self, prefix: str) -> list[str]:
        """`Prefix.1`, `Prefix.2`, … in numeric order."""
        pattern = re.compile(rf"{re.escape(prefix)}\.(\d+)")
        found = [(int(m.group(1)), v) for k, v in self.values.items() if (m := pattern.fullmatch(k))]
        return [value for _, value in sorted(found)]

    def groups(self, prefix: str) -> dict[int, Params]:
        """`Prefix.N.Field…` → {N: Params({"Field…": value})}."""
        pattern = re.compile(rf"{re.escape(prefix)}\.(\d+)\.(.+)")
        grouped: dict[int, dict[str, str]] = {}
        for key, value in self.values.items():
            if m := pattern.fullmatch(key):
                grouped.setdefault(int(m.group(1)), {})[m.group(2)] = value
        return {n: Params(grouped[n]) for n in sorted(grouped)}

    def filters(self, supported: Sequence[str]) -> dict[str, set[str]]:
        result: dict[str, set[str]] = {}
        for group in self.groups("Filter").values():
            name = group.require("Name")
            if name not in supported:
                raise invalid("Filter.Name", name, f"supported filters are {', '.join(supported)}")
            result.setdefault(name, set()).update(group.numbered("Value"))
        return result


def matches(filters: dict[str, set[str]], values: dict[str, Callable[[], str | list[str]]]) -> bool:
    """True when every filter has one of its values among the item's values for it."""
    for name, wanted in filters.items():
        have = values[name]()
        have_set = {have} if isinstance(have, str) else set(have)
        if not have_set & wanted:
            return False
    return True


def select_ids(items: dict[str, T], ids: list[str], kind: str) -> list[T]:
    """Items by explicit ids (each must exist), or all of them."""
    if not ids:
        return list(items.values())
    missing = [i for i in ids if i not in items]
    if missing:
        raise not_found(kind, missing[0])
    return [items[i] for i in dict.fromkeys(ids)]


def page(params: Params, items: list[T]) -> tuple[list[T], str | None]:
    """One page of `items` and the token of the next page (None on the last page)."""
    limit = params.integer("MaxRecords", minimum=1, maximum=MAX_RECORDS)
    token = params.get("NextToken")
    start = 0
    if token is not None:
        if not token.isdigit() or int(token) > len(items):
            raise invalid("NextToken", token, "not a token this server handed out")
        start = int(token)
    if limit is None:
        return items[start:], None
    end = start + limit
    return items[start:end], (str(end) if end < len(items) else None)
