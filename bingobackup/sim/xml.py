"""EC2-shaped XML: `<{Action}Response>` with `<requestId>` first, and error documents.

Bodies are nested dicts: a dict becomes child elements, a list becomes `<item>` children,
None is left out, booleans are `true`/`false`, floats named `*Time` are epoch seconds.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from typing import Any

from bingobackup.sim.errors import SimApiError

NAMESPACE = "http://ec2.amazonaws.com/doc/2009-08-15/"


def iso_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fill(parent: ET.Element, body: dict[str, Any]) -> None:
    for name, value in body.items():
        if value is None:
            continue
        element = ET.SubElement(parent, name)
        if isinstance(value, dict):
            _fill(element, value)
        elif isinstance(value, list):
            for entry in value:
                item = ET.SubElement(element, "item")
                _fill(item, entry)
        else:
            element.text = _text(value)


def _document(root: ET.Element) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")).encode()


def render_response(action: str, request_id: str, body: dict[str, Any]) -> bytes:
    root = ET.Element(f"{action}Response", {"xmlns": NAMESPACE})
    _fill(root, {"requestId": request_id, **body})
    return _document(root)


def render_error(error: SimApiError, request_id: str) -> bytes:
    root = ET.Element("Response")
    _fill(
        root,
        {
            "Errors": {"Error": {"Code": error.code, "ErrorNo": error.error_no, "Message": error.message}},
            "RequestID": request_id,
        },
    )
    return _document(root)
