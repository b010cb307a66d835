"""Signature Version 2 (HmacSHA256) and request timestamps for BingoCloud's EC2-style Query API.

Shared by the client (to sign) and the simulator (to verify). Its correctness is pinned by
tests against botocore's SigV2 and against a re-implementation of the public BingoCloud
client (yunionio/cloudmux, pkg/multicloud/bingocloud/bingo.go).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, quote_plus
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

API_VERSION = "2009-08-15"
SIGNATURE_METHOD = "HmacSHA256"
SIGNATURE_VERSION = "2"
# BingoCloud reads `Timestamp` as the wall time of the cloud's own zone, despite the 'Z'.
# The public client writes Asia/Shanghai time with milliseconds ("2006-01-02T15:04:05.000Z").
DEFAULT_TIMEZONE = "Asia/Shanghai"
TIMESTAMP_FORMS = "YYYY-MM-DDTHH:MM:SS.mmmZ or YYYY-MM-DDTHH:MM:SSZ"
_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d{3})?Z")


def mask_key(key: str) -> str:
    """A key as messages, tables and reprs show it: its first and last four characters, enough
    for an operator to tell two keys apart, too few to use one. Short keys show two; an absent
    key shows as nothing."""
    if not key:
        return ""
    if len(key) < 12:
        return f"{key[:2]}…"
    return f"{key[:4]}…{key[-4:]}"


def _encode(value: str) -> str:
    # RFC 3986: only unreserved characters stay literal; space becomes %20, never '+'.
    return quote(value.encode("utf-8"), safe="-_.~")


def _form_encode(value: str) -> str:
    # What the public client signs (Go's url.QueryEscape): the same, but space becomes '+'.
    return quote_plus(value.encode("utf-8"), safe="-_.~")


def canonical_query(params: Mapping[str, str], encode: Callable[[str], str] = _encode) -> str:
    """Every parameter but `Signature`, sorted by name, percent-encoded, joined with '&'."""
    return "&".join(f"{encode(k)}={encode(str(v))}" for k, v in sorted(params.items()) if k != "Signature")


def string_to_sign(
    method: str, host: str, path: str, params: Mapping[str, str], encode: Callable[[str], str] = _encode
) -> str:
    return f"{method.upper()}\n{host.lower()}\n{path or '/'}\n{canonical_query(params, encode)}"


def signature(
    secret_key: str,
    method: str,
    host: str,
    path: str,
    params: Mapping[str, str],
    encode: Callable[[str], str] = _encode,
) -> str:
    digest = hmac.new(
        secret_key.encode("utf-8"),
        string_to_sign(method, host, path, params, encode).encode("utf-8"),
        hashlib.sha256,
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(secret_key: str, method: str, host: str, path: str, params: Mapping[str, str]) -> bool:
    """True when `Signature` is right in either encoding of spaces: %20 (AWS SigV2, our client)
    or '+' (the public BingoCloud client); they differ only when a value holds a space."""
    given = params.get("Signature", "")
    encodings = (_encode, _form_encode) if any(" " in f"{k}{v}" for k, v in params.items()) else (_encode,)
    return any(
        hmac.compare_digest(signature(secret_key, method, host, path, params, encode), given)
        for encode in encodings
    )


def cloud_zone(name: str) -> ZoneInfo:
    """The IANA zone `name`, or a ValueError saying what a valid name looks like."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone {name!r} is not an IANA time zone such as Asia/Shanghai or UTC") from None


def cluster_timestamp(now: float | None = None, timezone: str = DEFAULT_TIMEZONE) -> str:
    """`now` (default: this host's clock) as the wall time in the cloud's `timezone`, written as
    the public client writes it: milliseconds and a literal 'Z'. The host's own zone plays no part."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, cloud_zone(timezone))
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def parse_cluster_timestamp(raw: str, timezone: str = DEFAULT_TIMEZONE) -> datetime:
    """The instant a `Timestamp` names, read as wall time in `timezone`; ValueError if malformed."""
    match = _TIMESTAMP.fullmatch(raw)
    if match is None:
        raise ValueError(f"Timestamp {raw!r} is not of the form {TIMESTAMP_FORMS}")
    wall = datetime.strptime(match[1], "%Y-%m-%dT%H:%M:%S")
    millis = int(match[2][1:]) if match[2] else 0
    return (wall + timedelta(milliseconds=millis)).replace(tzinfo=cloud_zone(timezone))


def timestamp_skew(raw: str, timezone: str = DEFAULT_TIMEZONE, now: float | None = None) -> timedelta:
    """How far a `Timestamp` read in `timezone` is from `now` (positive: in the future)."""
    instant = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return parse_cluster_timestamp(raw, timezone) - instant


def signed_params(
    action: str,
    params: Mapping[str, str],
    access_key: str,
    secret_key: str,
    host: str,
    path: str = "/",
    timezone: str = DEFAULT_TIMEZONE,
) -> dict[str, str]:
    """The full parameter set of one request, `Signature` included, stamped in `timezone`."""
    full = {
        **{k: str(v) for k, v in params.items()},
        "Action": action,
        "Version": API_VERSION,
        "AWSAccessKeyId": access_key,
        "SignatureVersion": SIGNATURE_VERSION,
        "SignatureMethod": SIGNATURE_METHOD,
        "Timestamp": cluster_timestamp(timezone=timezone),
    }
    full["Signature"] = signature(secret_key, "POST", host, path, full)
    return full
