"""Every item of a paged Prefect read, one page request at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

PAGE = 200


def read_all(fetch: Callable[[int, int], Sequence[T]]) -> Iterator[T]:
    """The items `fetch(offset, limit)` returns over all pages; a short page is the last. A
    page longer than asked for means the endpoint does not page (it sent everything): that
    is the last too, rather than asking again for ever."""
    page = PAGE  # read at each call, so tests can make pages small
    offset = 0
    while True:
        items = fetch(offset, page)
        yield from items
        if len(items) != page:
            return
        offset += page
