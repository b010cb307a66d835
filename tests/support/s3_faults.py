"""A tiny fault-injecting HTTP proxy in front of moto's S3 server (moto has no fault injection).

boto3 talks plain HTTP to the proxy on 127.0.0.1, which forwards each request to moto, or
answers with an S3 error instead: a run of transient errors (503 SlowDown, 500) that
botocore's retries must ride out, or a persistent fault on uploads (500 InternalError, or
403 QuotaExceeded as Ceph RGW and MinIO answer a full quota). Reads, listings and deletes
pass while an upload fault is armed, so a writer can still clean up after itself.

`fault_every(n, ...)` spreads faults through a whole run: every n-th request gets the next
of the given faults in turn, a status as above, `SLOW` (answered after `slow_seconds`) or
`DROP` (the connection closed without an answer, as a lost link does) or `LOST_ANSWER` (the
request is carried out, then the connection closed: the client does not know it landed).

With `tls` the proxy speaks HTTPS (a self-signed endpoint in front of plain moto); with
`disguise_etags` it answers ETags that are not MD5s, as services encrypting at rest do.
"""

from __future__ import annotations

import errno
import http.client
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_ERRORS = {
    503: ("SlowDown", "Please reduce your request rate."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    403: ("QuotaExceeded", "Bucket quota exceeded."),
    501: ("NotImplemented", "A header you provided implies functionality that is not implemented"),
}
SLOW = "slow"  # fault_every: the answer comes after `slow_seconds`
DROP = "drop"  # fault_every: the connection is closed without an answer
LOST_ANSWER = "lost-answer"  # fault_every: carried out, then closed without an answer


class FaultProxy:
    def __init__(self, upstream: str, *, tls: ssl.SSLContext | None = None) -> None:
        target = urlsplit(upstream)
        self._upstream = (target.hostname or "127.0.0.1", target.port or 80)
        self._lock = threading.Lock()
        self._transient: list[int] = []
        self._persistent: int | None = None
        self._every = 0
        self._cycle: list[int | str] = []
        self.slow_seconds = 2.0
        self.injected: dict[int | str, int] = {}  # fault -> times injected by fault_every
        self.failures = 0
        self.requests = 0
        self.disguise_etags = False
        self.refuse_conditional_writes = False
        self._scheme = "https" if tls else "http"
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self._server.server_address[1]}"

    def fail_next(self, *statuses: int) -> None:
        """The next requests (any kind) are answered with these statuses, one each."""
        with self._lock:
            self._transient.extend(statuses)

    def fault_every(self, every: int, *faults: int | str) -> None:
        """Every `every`-th request gets the next of `faults` in turn (statuses, SLOW, DROP);
        no faults: off."""
        with self._lock:
            self._every, self._cycle = (every, list(faults)) if faults else (0, [])

    def fail_uploads(self, code: int | None) -> None:
        """Every upload (PUT, POST) fails: errno.ENOSPC → 403 QuotaExceeded, else 500; None: off."""
        with self._lock:
            self._persistent = None if code is None else (403 if code == errno.ENOSPC else 500)

    def _fault_for(self, method: str, conditional: bool) -> int | str | None:
        with self._lock:
            self.requests += 1
            if self._every and self.requests % self._every == 0:
                fault = self._cycle[(self.requests // self._every - 1) % len(self._cycle)]
                self.injected[fault] = self.injected.get(fault, 0) + 1
                self.failures += fault != SLOW
                return fault
            if conditional and self.refuse_conditional_writes:
                self.failures += 1
                return 501
            if self._transient:
                self.failures += 1
                return self._transient.pop(0)
            if self._persistent is not None and method in ("PUT", "POST"):
                self.failures += 1
                return self._persistent
            return None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                """The request's body, also when it comes chunked (pyarrow's S3 client sends so)."""
                if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
                    length = int(self.headers.get("Content-Length") or 0)
                    return self.rfile.read(length) if length else b""
                parts = []
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()  # the CRLF after each chunk
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)

            def _relay(self) -> None:
                body = self._body()
                status = proxy._fault_for(self.command, "If-None-Match" in self.headers)
                if status == DROP:
                    self.close_connection = True  # no answer: the client sees the link drop
                    return
                lose_answer = status == LOST_ANSWER
                if status == SLOW:
                    time.sleep(proxy.slow_seconds)  # a slow service, not a wait for an event
                if isinstance(status, int):
                    code, message = _ERRORS[status]
                    payload = (
                        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                        f"<Message>{message}</Message></Error>"
                    ).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                connection = http.client.HTTPConnection(*proxy._upstream, timeout=30)
                try:
                    # The body goes on whole: its length replaces a chunked transfer encoding.
                    hop = ("connection", "transfer-encoding", "content-length", "expect")
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in hop}
                    if body or self.command in ("PUT", "POST"):
                        headers["Content-Length"] = str(len(body))
                    connection.request(self.command, self.path, body=body, headers=headers)
                    answer = connection.getresponse()
                    data = answer.read()
                    if lose_answer:
                        self.close_connection = True
                        return
                    self.send_response(answer.status)
                    for key, value in answer.getheaders():
                        if key.lower() == "etag" and proxy.disguise_etags and self.command in ("HEAD", "GET"):
                            value = '"not-an-md5-' + value.strip('"')[::-1] + '"'
                        if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(key, value)
                    # a HEAD answer has no body but carries the object's length
                    declared = answer.getheader("Content-Length") if self.command == "HEAD" else None
                    self.send_header("Content-Length", declared or str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    connection.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        return Handler
