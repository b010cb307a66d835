"""Namespace-agnostic reading of EC2-shaped XML responses.

BingoCloud and the simulator answer in the EC2 2009-08-15 namespace; real deployments have
been seen with other or no namespaces, so every tag is reduced to its local name on parse.
Element names are matched exactly first, then ignoring case: the public BingoCloud client
(yunionio/cloudmux, pkg/multicloud/bingocloud/bingo.go) reads both `nextToken` and
`NextToken`, and maps fields case-insensitively, so a real cloud may write either.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

GIB = 1 << 30


def parse(body: bytes) -> ET.Element:
    """The root element; any unreadable body (bad XML, unknown encoding) is an `ET.ParseError`."""
    try:
        root = ET.fromstring(body)
    except (LookupError, ValueError) as exc:  # an unknown or multi-byte declared encoding
        raise ET.ParseError(str(exc)) from None
    for element in root.iter():
        element.tag = element.tag.rsplit("}", 1)[-1]
    return root


def _named(element: ET.Element, name: str) -> ET.Element | None:
    for found in element:
        if found.tag == name:
            return found
    wanted = name.lower()
    for found in element:
        if found.tag.lower() == wanted:
            return found
    return None


def child(element: ET.Element | None, path: str) -> ET.Element | None:
    """The first element at `path` (names joined by `/`), matched exactly, else ignoring case."""
    for name in path.split("/"):
        if element is None:
            return None
        element = _named(element, name)
    return element


def first_text(element: ET.Element | None, *paths: str) -> str | None:
    """Text of the first of `paths` present: the name we expect, then names other clouds use."""
    for path in paths:
        found = text(element, path)
        if found is not None:
            return found
    return None


def text(element: ET.Element | None, path: str) -> str | None:
    """Text of the element at `path`, stripped; None when the element is absent."""
    found = child(element, path)
    if found is None:
        return None
    return (found.text or "").strip()


def items(element: ET.Element | None, set_path: str) -> list[ET.Element]:
    """The `item`s of a set; one `item` is a list of one (EC2 writes no other list shape)."""
    found = child(element, set_path)
    return [] if found is None else [i for i in found if i.tag.lower() == "item"]


def next_token(root: ET.Element) -> str | None:
    """The paging token: a child of the response, or of its set (cloudmux bingo.go looks in both)."""
    token = text(root, "nextToken")
    if token:
        return token
    for element in root:
        token = text(element, "nextToken")
        if token:
            return token
    return None


def to_int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(float(value))  # some BingoCloud versions write counts as "2.0"
    except (ValueError, OverflowError):
        raise ValueError(f"{value[:40]!r} is not a number") from None


def to_bool(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    return value.strip().lower() in ("true", "1", "yes")


def to_datetime(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value[:40]!r} is not an ISO 8601 time") from None
    # BingoCloud writes times with 'Z'; a naive time is taken as UTC rather than guessed.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def gib_or_bytes(gib: str | None, exact_bytes: str | None) -> int | None:
    """Prefer the exact byte size extension; fall back to EC2's rounded GiB."""
    exact = to_int(exact_bytes)
    if exact is not None:
        return exact
    rounded = to_int(gib)
    return None if rounded is None else rounded * GIB
