"""The CLI's local Prefect server: started once, reused, stopped, and never when
PREFECT_API_URL names a team's server."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request

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
