"""The CLI's local Prefect server: started once, reused, stopped, and never when
PREFECT_API_URL names a team's server."""

from __future__ import annotations

import os
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
