"""The simulated BingoCloud's HTTP server: a ThreadingHTTPServer on 127.0.0.1.

Every API request is checked as BingoCloud checks it (access key, SigV2 signature against
the Host header, timestamp skew, version), then dispatched on `Action` to the handler of
its API area under the state lock. `/_sim/…` is the JSON admin endpoint (see admin.py).
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import threading
import time
import uuid
from contextlib import ExitStack
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from urllib.parse import parse_qsl, urlsplit

from bingobackup.cloud import signing
from bingobackup.sim import api_instances, api_inventory, api_volumes
from bingobackup.sim.addvm import exclusive_state_dir
from bingobackup.sim.admin import PREFIX, handle_admin
from bingobackup.sim.cloud import SimCloud
from bingobackup.sim.errors import SimApiError
from bingobackup.sim.faults import Fault, FaultInjector, ReplyFault
from bingobackup.sim.layers import write_volume
from bingobackup.sim.query import Params
from bingobackup.sim.scenarios import create_scenario
from bingobackup.sim.state import StateStore
from bingobackup.sim.stats import SimStats
from bingobackup.sim.types import Handler
from bingobackup.sim.xml import render_error, render_response

log = logging.getLogger("bingobackup.sim")

ACTIONS: dict[str, Handler] = {**api_inventory.ACTIONS, **api_instances.ACTIONS, **api_volumes.ACTIONS}
MAX_SKEW = timedelta(minutes=15)
_MAX_BODY = 1 << 20


class _SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, port: int, cloud: SimCloud, keys: dict[str, str], faults: FaultInjector, timezone: str
    ) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.cloud = cloud
        self.keys = keys
        self.faults = faults
        self.timezone = timezone


class _Handler(BaseHTTPRequestHandler):
    server: _SimHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "BingoCloudSimulator/1.0"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # ------------------------------------------------------------------ plumbing

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _admin(self, method: str) -> None:
        if self.client_address[0] not in ("127.0.0.1", "::1"):
            self._send(403, b'{"error": "the admin endpoint answers loopback only"}', "application/json")
            return
        result = handle_admin(
            self.server.cloud, self.server.faults, method, urlsplit(self.path).path, self._body()
        )
        self._send(result.status, json.dumps(result.body).encode(), "application/json")

    def _is_admin(self) -> bool:
        return urlsplit(self.path).path.startswith(PREFIX)

    def do_GET(self) -> None:
        if self._is_admin():
            self._admin("GET")
        else:
            self._send(405, b"BingoCloud's API takes POST requests\n", "text/plain")

    def do_PUT(self) -> None:
        self._admin("PUT") if self._is_admin() else self._send(405, b"", "text/plain")

    def do_DELETE(self) -> None:
        self._admin("DELETE") if self._is_admin() else self._send(405, b"", "text/plain")

    def do_POST(self) -> None:
        if self._is_admin():
            self._admin("POST")
            return
        request_id = str(uuid.uuid4())
        try:
            params = Params(dict(parse_qsl(self._body().decode("utf-8"), keep_blank_values=True)))
        except (ValueError, UnicodeDecodeError):
            params = Params({})
        action = params.get("Action", "") or ""
        delay, fault = self.server.faults.decide(action)
        if delay:
            time.sleep(delay)  # injected latency: the point of the fault, not synchronisation
        if fault == "drop":
            self._drop_connection()
            return
        self.server.cloud.stats.request(action or "(none)")
        spoil = self.server.faults.config.reply if fault == "spoil_reply" else None
        if spoil is not None:
            self._send_spoiled(spoil, action, params, request_id)
            return
        status, body = self._process(action, params, fault, request_id)
        if fault == "lose_reply":
            self.server.cloud.stats.reply_lost(action)
            self._drop_connection()
            return
        self._send(status, body, "text/xml; charset=utf-8")

    def _send_spoiled(self, spoil: ReplyFault, action: str, params: Params, request_id: str) -> None:
        """The reply as `spoil` says a proxy or broken cloud sends it (see faults.py)."""
        self.server.cloud.stats.reply_spoiled(action)
        status, body = (200, b"") if spoil.substitutes() else self._process(action, params, None, request_id)
        status, content_type, sent, announced = spoil.spoiled(status, body)
        self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", content_type or "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(announced))
        if spoil.location is not None:
            self.send_header("Location", spoil.location)
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            if spoil.trickle_bytes_per_second is None:
                self.wfile.write(sent)
            else:
                self._trickle(sent, spoil.trickle_bytes_per_second)
            self.wfile.flush()
        except OSError:
            return  # the client gave up (its timeout), as it should on a trickle
        if len(sent) < announced:
            self._drop_connection()

    def _trickle(self, body: bytes, bytes_per_second: float) -> None:
        tick = 0.05
        step = max(1, int(bytes_per_second * tick))
        for start in range(0, len(body), step):
            self.wfile.write(body[start : start + step])
            self.wfile.flush()
            time.sleep(step / bytes_per_second)  # the injected slowness itself, not synchronisation

    def _drop_connection(self) -> None:
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _process(
        self, action: str, params: Params, fault: Fault | None, request_id: str
    ) -> tuple[int, bytes]:
        """The API call carried out: (HTTP status, XML body) of the reply."""
        try:
            if fault == "throttle":
                raise SimApiError("RequestLimitExceeded", "Request limit exceeded; retry with backoff.", 503)
            if fault == "error":
                raise SimApiError("InternalError", "An internal error occurred (injected); retry.", 500)
            handler = self._authenticate(params)
            with self.server.cloud.lock:
                self.server.cloud.settle()
                body = handler(self.server.cloud, params)
                if not action.startswith("Describe"):
                    self.server.cloud.store.save()
            return 200, render_response(action, request_id, body)
        except SimApiError as error:
            return error.status, render_error(error, request_id)
        except Exception:
            log.exception("simulator: %s failed", action)
            internal = SimApiError("InternalError", "The simulator failed on this request; see its log.", 500)
            return 500, render_error(internal, request_id)

    # ------------------------------------------------------------------ checks

    def _authenticate(self, params: Params) -> Handler:
        access_key = params.get("AWSAccessKeyId")
        secret_key = self.server.keys.get(access_key or "")
        if secret_key is None:
            raise SimApiError(
                "AuthFailure",
                f"The Access Key '{signing.mask_key(access_key or '')}' is not known to this cloud.",
                401,
            )
        params.require("Signature")
        if params.get("SignatureVersion") != signing.SIGNATURE_VERSION:
            raise SimApiError("InvalidParameterValue", "SignatureVersion must be 2")
        if params.get("SignatureMethod") != signing.SIGNATURE_METHOD:
            raise SimApiError("InvalidParameterValue", f"SignatureMethod must be {signing.SIGNATURE_METHOD}")
        host = self.headers.get("Host", "")
        path = urlsplit(self.path).path or "/"
        if not signing.verify(secret_key, "POST", host, path, params.values):
            raise SimApiError(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. "
                "Check your Secret Key and signing method.",
                403,
            )
        self._check_timestamp(params.require("Timestamp"), self.server.timezone)
        version = params.require("Version")
        if version != signing.API_VERSION:
            raise SimApiError(
                "InvalidParameterValue", f"Version {version} is not supported; use {signing.API_VERSION}"
            )
        action = params.require("Action")
        handler = ACTIONS.get(action)
        if handler is None:
            raise SimApiError("InvalidAction", f"The action {action} is not valid for this web service.")
        return handler

    @staticmethod
    def _check_timestamp(raw: str, timezone: str) -> None:
        # The stamp is wall time in the cloud's zone (the 'Z' is not UTC there), compared with
        # the true instant, so the zone of the machine running the simulator plays no part.
        try:
            skew = signing.timestamp_skew(raw, timezone)
        except ValueError as exc:
            raise SimApiError("InvalidParameterValue", str(exc)) from None
        if abs(skew) > MAX_SKEW:
            raise SimApiError(
                "RequestExpired",
                f"Request has expired: timestamp {raw}, read in the cloud's timezone {timezone}, is "
                f"{abs(skew).total_seconds() / 60:.0f} minutes {'ahead of' if skew > timedelta() else 'behind'} "
                "the cloud's clock (at most 15 allowed).",
            )


class RunningSimulator:
    """A simulator serving in a daemon thread; `stop()` shuts it down and saves its state."""

    def __init__(
        self,
        server: _SimHTTPServer,
        thread: threading.Thread,
        state_dir: Path,
        access_key: str,
        resources: ExitStack,
    ) -> None:
        self._server = server
        self._thread = thread
        self._resources = resources
        self.port: int = server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}/"
        self.admin_url = f"http://127.0.0.1:{self.port}{PREFIX}"
        self.state_dir = state_dir
        self.access_key = access_key
        self.cloud = server.cloud
        self.faults = server.faults

    def __repr__(self) -> str:
        return f"RunningSimulator(endpoint={self.endpoint!r}, state_dir={str(self.state_dir)!r})"

    def stats(self) -> SimStats:
        return self.cloud.stats.snapshot()

    def write_volume(self, volume_id: str, offset: int, data: bytes) -> None:
        """Write into a volume as `POST /_sim/volumes/<id>/write` does (snapshots keep their bytes)."""
        with self.cloud.lock:
            write_volume(self.cloud.store, volume_id, offset, data)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._resources.close()  # stops the cloud (saves the state), then frees the state dir


def start_simulator(
    state_dir: Path,
    access_key: str,
    secret_key: str,
    scenario: str | None = "demo",
    port: int = 0,
    transition_delay: float = 0.2,
    timezone: str = signing.DEFAULT_TIMEZONE,
) -> RunningSimulator:
    """Serve a simulated BingoCloud on 127.0.0.1:`port` (0: any free port); returns when ready.

    A state directory without state gets `scenario` (None: an empty cloud); an existing
    state is loaded as it was left. `timezone` is the zone the cloud reads request
    timestamps in (an IANA name; ValueError if unknown).
    """
    signing.cloud_zone(timezone)
    state_dir = Path(state_dir)
    with ExitStack() as resources:
        resources.enter_context(exclusive_state_dir(state_dir))
        if StateStore.exists(state_dir):
            store = StateStore.load(state_dir)
        else:
            store = StateStore.create(state_dir)
            create_scenario(store, scenario or "empty")
        cloud = SimCloud(store, transition_delay)
        cloud.start()
        resources.callback(cloud.stop)
        server = _SimHTTPServer(port, cloud, {access_key: secret_key}, FaultInjector(), timezone)
        # From here the running simulator owns the lock and the cloud: stop() releases both.
        owned = resources.pop_all()
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name=f"bingocloud-sim-{port}", daemon=True
    )
    thread.start()
    return RunningSimulator(server, thread, state_dir, access_key, owned)


def serve_forever(
    state_dir: Path,
    port: int,
    access_key: str,
    secret_key: str,
    scenario: str | None = "demo",
    transition_delay: float = 0.2,
    timezone: str = signing.DEFAULT_TIMEZONE,
) -> None:
    """Serve in the foreground until SIGTERM or SIGINT (`bingobackup sim serve`)."""
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        running = start_simulator(
            state_dir, access_key, secret_key, scenario, port, transition_delay, timezone
        )
        print(
            f"Simulated BingoCloud at {running.endpoint} (state in {state_dir}, timestamps read in "
            f"{timezone}); Ctrl-C stops it",
            flush=True,
        )
        try:
            stopping.wait()
        finally:
            running.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
