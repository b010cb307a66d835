"""One signed POST to a BingoCloud endpoint over HTTP or HTTPS (standard library only).

A fresh connection per request keeps the client safe to share between threads (parallel
disks) and makes a dropped keep-alive connection impossible to confuse with a server fault.
The timeout bounds the whole answer, not each read: a proxy trickling a byte now and then
would otherwise hold a backup forever, as every read would come in under a per-read timeout.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import time
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlencode, urlsplit

from bingobackup.cloud.errors import CloudUnreachableError

_USER_AGENT = "bingobackup-cloud/1"


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    hostname: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"BingoCloud endpoint {url!r} is not an http(s)://ADDRESS:PORT/ URL; "
                "give the address with http:// (SSL off) or https:// (SSL on)"
            )
        default_port = 443 if parts.scheme == "https" else 80
        return cls(parts.scheme, parts.hostname, parts.port or default_port, parts.path or "/")

    @property
    def host_header(self) -> str:
        """The Host header, which is also the host SigV2 signs: lowercased, port only when not default."""
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        default_port = 443 if self.scheme == "https" else 80
        return (host if self.port == default_port else f"{host}:{self.port}").lower()

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host_header}{self.path}"


def make_ssl_context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context = ssl.create_default_context()
    if ca_file is not None:
        if not os.path.isfile(ca_file):
            raise ValueError(
                f"CA file {ca_file!r} does not exist; give the PEM file of the CA that signed the "
                "BingoCloud certificate"
            )
        # Added to the system CAs, so a cloud with a public certificate keeps working.
        context.load_verify_locations(cafile=ca_file)
    return context


class Reply(NamedTuple):
    """An HTTP answer: what the client needs of it to tell BingoCloud's API from what is not."""

    status: int
    body: bytes
    content_type: str = ""
    location: str = ""


class _AnswerTooSlow(Exception):
    pass


def _read_body(response: http.client.HTTPResponse, sock: socket.socket | None, deadline: float) -> bytes:
    """The whole body by `deadline`; IncompleteRead when the connection closes short of it."""
    parts: list[bytes] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _AnswerTooSlow(sum(map(len, parts)))
        if sock is not None:
            sock.settimeout(remaining)
        try:
            part = response.read1(1 << 16)
        except TimeoutError:
            raise _AnswerTooSlow(sum(map(len, parts))) from None
        if not part:
            break
        parts.append(part)
    body = b"".join(parts)
    if response.length:  # Content-Length promised more than arrived
        raise http.client.IncompleteRead(body, response.length)
    return body


def post_form(
    endpoint: Endpoint,
    params: dict[str, str],
    *,
    action: str,
    timeout: float,
    ssl_context: ssl.SSLContext | None,
) -> Reply:
    """POST `params` as a form; the whole reply within `timeout`, or CloudUnreachableError."""
    body = urlencode(params).encode("ascii")
    headers = {
        "Host": endpoint.host_header,
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "User-Agent": _USER_AGENT,
        "Connection": "close",
    }
    connection = _connection(endpoint, timeout, ssl_context)
    deadline = time.monotonic() + timeout
    try:
        connection.request("POST", endpoint.path, body=body, headers=headers)
        sock = connection.sock  # the response reads from it after the connection lets go of it
        response = connection.getresponse()
        return Reply(
            response.status,
            _read_body(response, sock, deadline),
            response.getheader("Content-Type", ""),
            response.getheader("Location", ""),
        )
    except (OSError, http.client.HTTPException, _AnswerTooSlow) as exc:
        raise _unreachable(endpoint, exc, action, timeout) from None
    finally:
        connection.close()


def _connection(
    endpoint: Endpoint, timeout: float, ssl_context: ssl.SSLContext | None
) -> http.client.HTTPConnection:
    if endpoint.scheme == "https":
        return http.client.HTTPSConnection(
            endpoint.hostname, endpoint.port, timeout=timeout, context=ssl_context
        )
    return http.client.HTTPConnection(endpoint.hostname, endpoint.port, timeout=timeout)


def _unreachable(endpoint: Endpoint, exc: Exception, action: str, timeout: float) -> CloudUnreachableError:
    """What a failed exchange tells the operator (certificate and handshake failures will not
    pass by retrying)."""
    transient = True
    if isinstance(exc, _AnswerTooSlow):
        reason = (
            f"the answer did not arrive whole within {timeout:g} s ({exc.args[0]} bytes came; a stalled "
            "or very slow link or proxy)"
        )
    elif isinstance(exc, http.client.IncompleteRead):
        reason = f"the connection closed after {len(exc.partial)} bytes of the answer, {exc.expected} short"
    elif isinstance(exc, ssl.SSLCertVerificationError):
        reason = (
            f"TLS certificate not trusted ({exc.verify_message}); give the cloud's CA file, "
            "or turn verification off only on a trusted network"
        )
        transient = False
    elif isinstance(exc, ssl.SSLError):
        # Usually SSL switched on against a plain-HTTP port (or the reverse).
        reason, transient = f"TLS handshake failed ({exc.reason})", False
    elif isinstance(exc, TimeoutError):
        reason = f"no answer within {timeout:g} s"
    else:
        reason = type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {exc}"
    return CloudUnreachableError(endpoint.url, reason, action=action, transient=transient)
