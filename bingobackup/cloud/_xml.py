"""Namespace-agnostic reading of EC2-shaped XML responses.

BingoCloud and the simulator answer in the EC2 2009-08-15 namespace; real deployments have
been seen with other or no namespaces, so every tag is reduced to its local name on parse.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

GIB = 1 << 30


def parse(body: bytes) -> ET.Element:
    root = ET.fromstring(body)
    for element in root.iter():
        element.tag = element.tag.rsplit("}", 1)[-1]
    return root


def child(element: ET.Element | None, path: str) -> ET.Element | None:
    return None if element is None else element.find(path)


def text(element: ET.Element | None, path: str) -> str | None:
    """Text of the element at `path`, stripped; None when the element is absent."""
    found = child(element, path)
    if found is None:
        return None
    return (found.text or "").strip()


def items(element: ET.Element | None, set_path: str) -> list[ET.Element]:
    found = child(element, set_path)
    return [] if found is None else found.findall("item")


def to_int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    return int(float(value))  # some BingoCloud versions write counts as "2.0"


def to_bool(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    return value.strip().lower() in ("true", "1", "yes")


def to_datetime(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    # BingoCloud writes times with 'Z'; a naive time is taken as UTC rather than guessed.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def gib_or_bytes(gib: str | None, exact_bytes: str | None) -> int | None:
    """Prefer the exact byte size extension; fall back to EC2's rounded GiB."""
    exact = to_int(exact_bytes)
    if exact is not None:
        return exact
    rounded = to_int(gib)
    return None if rounded is None else rounded * GIB
