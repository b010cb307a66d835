"""A scripted BingoCloud stand-in: answers each POST with the next scripted reply.

Used to drive the client through shapes the simulator does not produce on demand (exact
error bodies, dropped connections at a chosen request, hand-made pages). It checks every
request's SigV2 signature against the Host header it received.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import parse_qsl

from bingobackup.cloud import signing

NS = "http://ec2.amazonaws.com/doc/2009-08-15/"
DROP: Literal["drop"] = "drop"

Reply = tuple[int, str] | Literal["drop"] | Callable[[dict[str, str]], tuple[int, str]]


def ok(action: str, inner: str, request_id: str = "req-ok") -> tuple[int, str]:
    return (
        200,
        f'<{action}Response xmlns="{NS}"><requestId>{request_id}</requestId>{inner}</{action}Response>',
    )


def error(
    status: int, code: str, message: str, request_id: str = "req-err", error_no: str = ""
) -> tuple[int, str]:
    number = f"<ErrorNo>{error_no}</ErrorNo>" if error_no else ""
    return status, (
        f"<Response><Errors><Error><Code>{code}</Code>{number}<Message>{message}</Message></Error></Errors>"
        f"<RequestID>{request_id}</RequestID></Response>"
    )


@dataclass
class Received:
    params: dict[str, str]
    host: str
    signature_ok: bool


@dataclass
class StubCloud:
    secret_key: str
    replies: list[Reply] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    endpoint: str = ""
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def _next(self) -> Reply:
        with self._lock:
            if not self.replies:
                return error(599, "StubScriptExhausted", "the test scripted fewer replies than requests")
            return self.replies.pop(0)

    def start(self, tls: ssl.SSLContext | None = None) -> StubCloud:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                params = dict(parse_qsl(self.rfile.read(length).decode("ascii"), keep_blank_values=True))
                host = self.headers.get("Host", "")
                stub.received.append(
                    Received(params, host, signing.verify(stub.secret_key, "POST", host, self.path, params))
                )
                reply = stub._next()
                if reply == DROP:
                    self.close_connection = True  # closed with no status line at all
                    return
                status, body = reply(params) if callable(reply) else reply
                data = body.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if tls is not None:
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        scheme = "https" if tls is not None else "http"
        self.endpoint = f"{scheme}://127.0.0.1:{server.server_address[1]}/"
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def actions(self) -> list[str]:
        return [r.params.get("Action", "") for r in self.received]


ACCESS_KEY = "AKSTUB00000000001"
SECRET_KEY = "sk-stub-0123456789abcdef-SECRET"  # tests assert this never leaks


# One instance as DescribeInstances answers it: the parsing tests' reference item.
INSTANCE_ITEM = """
<item><instanceId>i-49ADD723</instanceId><instanceName>web-1</instanceName><imageId>ami-1</imageId>
<instanceState><code>16</code><name>running</name></instanceState><instanceType>m1.small</instanceType>
<cpu>2</cpu><memory>4096</memory><clusterId>c-1</clusterId><hostAddress>node1@10.0.0.1</hostAddress>
<storageId>st-1</storageId><launchTime>2026-03-01T10:00:00Z</launchTime><platform>linux</platform>
<osName>Ubuntu</osName><osVersion>20.04</osVersion><architecture>x86_64</architecture>
<rootDeviceName>/dev/vda</rootDeviceName>
<networkInterfaceSet><item><networkInterfaceId>eni-1</networkInterfaceId><vpcId>vpc-1</vpcId>
<subnetId>subnet-1</subnetId><privateIpAddress>192.168.1.5</privateIpAddress>
<macAddress>d0:0d:49:ad:d7:23</macAddress>
<groupSet><item><groupId>sg-1</groupId><groupName>default</groupName></item></groupSet>
<attachment><deviceIndex>0</deviceIndex></attachment></item></networkInterfaceSet>
<blockDeviceMapping><item><deviceName>/dev/vda</deviceName><ebs><volumeId>vol-root</volumeId>
<status>attached</status><attachTime>2026-03-01T10:00:01Z</attachTime>
<deleteOnTermination>true</deleteOnTermination></ebs></item>
<item><deviceName>/dev/vdb</deviceName><ebs><volumeId>vol-data</volumeId><status>attached</status>
<deleteOnTermination>false</deleteOnTermination></ebs></item></blockDeviceMapping>
<tagSet><item><key>env</key><value>prod</value></item></tagSet></item>
"""
