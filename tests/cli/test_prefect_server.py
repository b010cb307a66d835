"""The CLI's local Prefect server: started once, reused, stopped, never when PREFECT_API_URL
names a team's server, and never another home's server found on its port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bingobackup.cli import prefect_server as manager
from bingobackup.cli.prefect_server import ServerInfo


def test_server_is_reused_not_restarted(prefect_server: ServerInfo) -> None:
    os.environ.pop("PREFECT_API_URL", None)
    try:
        again = manager.ensure_server()
    finally:
        os.environ["PREFECT_API_URL"] = prefect_server.url
    assert again.pid == prefect_server.pid
    with urllib.request.urlopen(f"{again.url}/health", timeout=5) as response:
        assert response.status == 200


def test_local_server_yields_the_cores_to_backups(prefect_server: ServerInfo) -> None:
    from bingobackup.cli.prefect_serve import NICENESS

    assert prefect_server.pid is not None
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    threads = os.listdir(f"/proc/{prefect_server.pid}/task")
    assert len(threads) > 1  # the API's and the services' threads, not only the main one
    for tid in threads:
        assert os.getpriority(os.PRIO_PROCESS, int(tid)) == min(ours + NICENESS, 19)


def test_external_api_url_is_used_as_is(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path))
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    info = manager.status()
    assert info is not None and info.pid is None and info.url == "http://127.0.0.1:9/api"
    with pytest.raises(manager.PrefectServerError, match="does not answer"):
        manager.ensure_server()
    assert not (tmp_path / "prefect-server.json").exists()


def test_status_without_server(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert manager.status() is None
    assert manager.stop_server() is False


_BEGIN_MODE_PROBE = """
import asyncio, contextlib, sys
from prefect.server.database.configurations import SQLITE_BEGIN_MODE, AioSqliteConfiguration
from bingobackup.cli.prefect_serve import _immediate_sqlite_transactions

class Session:
    @contextlib.asynccontextmanager
    async def begin(self):
        yield SQLITE_BEGIN_MODE.get()

async def mode():
    config = AioSqliteConfiguration(connection_url="sqlite+aiosqlite:///:memory:")
    async with config.begin_transaction(Session(), with_for_update=False) as seen:
        return seen

before = asyncio.run(mode())
_immediate_sqlite_transactions()
print(before, asyncio.run(mode()))
"""


def test_local_server_takes_sqlite_write_lock_when_a_transaction_begins() -> None:
    # Prefect's DEFERRED transactions fail at once with "database is locked" when another
    # writer got in first; the client then waits 2 s. Our launcher makes them IMMEDIATE. This
    # fails if a Prefect upgrade moves the hook, so the patch never silently stops working.
    out = subprocess.run(
        [sys.executable, "-c", _BEGIN_MODE_PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["DEFERRED", "IMMEDIATE"]


# More than Prefect's cap on concurrent requests to a SQLite server (100).
_OPEN_SOCKETS = 110


def test_local_server_answers_with_more_websockets_open_than_its_request_limit(
    prefect_server: ServerInfo,
) -> None:
    # Every flow run keeps two WebSockets open for its whole life. Prefect's SQLite request
    # cap counted them, so with 50 runs going the server answered nothing, not even /health.
    import anyio
    from prefect.client.orchestration import get_client
    from prefect.events.clients import PrefectEventsClient

    async def read_with_sockets_open() -> tuple[int, bool]:
        with anyio.fail_after(30):  # without the fix the 101st socket waits for ever
            async with contextlib.AsyncExitStack() as sockets:
                for _ in range(_OPEN_SOCKETS):
                    await sockets.enter_async_context(PrefectEventsClient())
                async with get_client() as client:
                    with anyio.fail_after(10):
                        health = await client.api_healthcheck()
                        runs = await client.read_flow_runs(limit=1)
                return len(runs), health is None

    found, healthy = asyncio.run(read_with_sockets_open())
    assert healthy and found <= 1


def test_a_request_that_waits_too_long_for_a_sqlite_request_slot_is_told_to_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import httpx
    from prefect.server.api.server import RequestLimitMiddleware

    from bingobackup.cli import prefect_serve

    monkeypatch.setattr(RequestLimitMiddleware, "__call__", RequestLimitMiddleware.__call__)  # undone after
    monkeypatch.setattr(prefect_serve, "REQUEST_SLOT_WAIT", 0.2)
    prefect_serve._websockets_outside_sqlite_request_limit()
    release = asyncio.Event()

    async def app(scope: dict, receive: object, send: Any) -> None:
        if scope["path"] == "/api/slow":
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    limited = RequestLimitMiddleware(app, limit=1)

    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=limited)
        async with httpx.AsyncClient(transport=transport, base_url="http://server") as client:
            slow = asyncio.create_task(client.get("/api/slow"))  # holds the only slot
            await asyncio.sleep(0)
            refused = await client.get("/api/flow_runs")
            health = await client.get("/api/health")
            release.set()
            return await slow, refused, health

    slow, refused, health = asyncio.run(scenario())
    assert slow.status_code == 200 and health.status_code == 200
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "2"
    assert "busy" in refused.json()["detail"]


class _OtherServer(BaseHTTPRequestHandler):
    """Another home's Prefect server, already on the port this home picked."""

    def do_GET(self) -> None:
        body = json.dumps({"home": "/somebody/else/prefect"}).encode() if "settings" in self.path else b"true"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_port_another_server_took_while_ours_started_is_not_adopted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Two homes starting at once can both find the preferred port free; the second must not
    # send its registrations (cloud keys among them) to the first one's server.
    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    other = ThreadingHTTPServer(("127.0.0.1", 0), _OtherServer)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    taken = other.server_address[1]
    try:
        ours = manager.ensure_server(port=taken)
        try:
            assert ours.url != f"http://127.0.0.1:{taken}/api"
            with urllib.request.urlopen(f"{ours.url}/admin/settings", timeout=5) as response:
                assert json.loads(response.read())["home"] == str(tmp_path / "prefect")
            assert manager.status() == ours  # later commands of this home find their own
        finally:
            assert manager.stop_server()
    finally:
        other.shutdown()
        other.server_close()


def test_clients_of_our_plain_http_server_load_a_one_certificate_ca_file(
    prefect_server: ServerInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import ssl

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_SSL_CERT_FILE, temporary_settings

    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path))
    settings = manager.client_settings(prefect_server)
    ca_file = Path(settings[PREFECT_API_SSL_CERT_FILE])
    # certifi's ~150 certificates cost each Prefect client 20 ms of CPU; this file holds one,
    # whose key nobody has: it would let a client trust no TLS peer at all.
    assert ssl.create_default_context(cafile=ca_file).cert_store_stats()["x509_ca"] == 1
    assert manager.client_settings(prefect_server)[PREFECT_API_SSL_CERT_FILE] == str(ca_file)  # made once
    with temporary_settings(updates=settings), get_client(sync_client=True) as client:
        assert client.api_healthcheck() is None  # the API answers through such a client

    team = ServerInfo(url="https://prefect.example/api", pid=None, log_path=None)
    assert PREFECT_API_SSL_CERT_FILE not in manager.client_settings(team)  # a team's server: untouched


def test_a_database_url_is_shown_masked_and_one_prefect_cannot_use_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from bingobackup.cli.main import app

    assert (
        manager.masked_database_url("postgresql+asyncpg://prefect:p%40ss@db.example:5432/prefect")
        == "postgresql+asyncpg://prefect:***@db.example:5432/prefect"
    )
    assert manager.masked_database_url("postgresql+asyncpg://prefect@db/prefect").endswith(
        "prefect@db/prefect"
    )
    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    result = CliRunner().invoke(
        app, ["server", "start", "--database", "postgresql://prefect:pw-xyz@db/prefect"]
    )
    error = str(result.exception)
    assert result.exit_code != 0 and "is not a PostgreSQL URL like postgresql+asyncpg://" in error
    assert "through asyncpg" in error and "pw-xyz" not in error and "prefect:***@db" in error
    assert manager.status() is None and not manager.database_url_file().exists()  # nothing started or kept
