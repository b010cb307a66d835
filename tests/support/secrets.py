"""Searching outputs for secrets in every form they could leak in: as typed, hex, base64 (at
each of the three byte alignments a secret can have inside a longer encoded value, standard
and URL-safe alphabets), URL- and form-quoted, JSON-escaped."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus


def _base64_cores(raw: bytes) -> list[str]:
    """The base64 characters that depend on `raw` alone, for each alignment `raw` can have."""
    cores = []
    for shift in range(3):
        encoded = base64.b64encode(bytes(shift) + raw).decode()
        first, end = -(-8 * shift // 6), 8 * (shift + len(raw)) // 6
        cores.append(encoded[first:end])
    return cores


def secret_forms(value: str) -> dict[str, str]:
    """Every form of `value` to look for, by the name of the form."""
    raw = value.encode()
    forms = {
        "as typed": value,
        "in hex": raw.hex(),
        "in upper-case hex": raw.hex().upper(),
        "URL-quoted": quote(value, safe=""),
        "form-quoted": quote_plus(value),
        "JSON-escaped": json.dumps(value)[1:-1],
    }
    for shift, core in enumerate(_base64_cores(raw)):
        forms[f"in base64 (alignment {shift})"] = core
        forms[f"in URL-safe base64 (alignment {shift})"] = core.replace("+", "-").replace("/", "_")
    return forms


def leaks(where: str, text: str, secrets: dict[str, str]) -> list[str]:
    """What of `secrets` (name → value) is in `text`, each as 'the NAME FORM is in WHERE'."""
    return [
        f"the {name} {form} is in {where}"
        for name, value in secrets.items()
        for form, encoded in secret_forms(value).items()
        if encoded in text
    ]
