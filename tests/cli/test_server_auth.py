"""`bingobackup server start --auth`: the local Prefect server requires Prefect's basic-auth
string; a request without it is refused, and the CLI's own commands send it. (Listening beyond
loopback turns this on; the test binds 127.0.0.1 only.)"""

from __future__ import annotations

import base64
import json
import stat
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bingobackup.cli import prefect_server
from bingobackup.cli.main import app

runner = CliRunner()


def api_status(url: str, auth_string: str | None) -> int:
    request = urllib.request.Request(f"{url}/deployments/filter", data=json.dumps({}).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    if auth_string is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth_string.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture
def own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("BINGOBACKUP_HOME", str(home))
    for name in ("PREFECT_API_URL", "PREFECT_SERVER_API_AUTH_STRING", "PREFECT_API_AUTH_STRING"):
        monkeypatch.delenv(name, raising=False)
    return home


def test_a_server_with_an_auth_string_refuses_anonymous_requests_and_serves_the_cli(
    own_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        result = runner.invoke(app, ["server", "start", "--auth"])
        assert result.exit_code == 0, result.output
        secret_file = own_home / "prefect-api-auth-string"
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        secret = secret_file.read_text().strip()
        assert len(secret) >= 32 and secret not in result.output
        info = prefect_server.status()
        assert info is not None and info.url.startswith("http://127.0.0.1:")

        assert api_status(info.url, None) == 401
        assert api_status(info.url, "not the string") == 401
        assert api_status(info.url, secret) == 200

        # The CLI's clients (a later command, in a new settings context) send it themselves.
        listed = runner.invoke(app, ["job", "list"])
        assert listed.exit_code == 0, listed.output
        assert "No jobs yet" in listed.output
        shown = runner.invoke(app, ["server", "status"])
        assert "listens on 127.0.0.1; the API requires its auth string" in shown.output

        again = runner.invoke(app, ["server", "start"])  # asked without auth: not silently reused
        assert again.exit_code != 0
        assert "already runs on 127.0.0.1 with an auth string" in str(again.exception)

        # On a backup host (the server by PREFECT_API_URL): install-service says the string is needed.
        monkeypatch.setenv("PREFECT_API_URL", info.url)
        unit_dir = own_home / "units"
        unit_dir.mkdir()
        install = ["worker", "install-service", "--host", "i-NOSUCH", "--unit-dir", str(unit_dir)]
        needed = runner.invoke(app, install)
        assert "requires its basic-auth string. Set PREFECT_API_AUTH_STRING" in str(needed.exception)
        monkeypatch.setenv("PREFECT_API_AUTH_STRING", "not the string")
        assert "refused the one given" in str(runner.invoke(app, install).exception)
        monkeypatch.setenv("PREFECT_API_AUTH_STRING", secret)
        past_auth = runner.invoke(app, install)  # the server answered: the host is what is wrong now
        assert "i-NOSUCH" in str(past_auth.exception) and "auth" not in str(past_auth.exception)
        assert list(unit_dir.iterdir()) == []
    finally:
        prefect_server.stop_server()


def test_serving_beyond_loopback_without_an_auth_string_is_refused(own_home: Path) -> None:
    result = runner.invoke(app, ["server", "start", "--host", "0.0.0.0", "--no-auth"])
    assert result.exit_code != 0
    assert "Refusing to serve the Prefect API on 0.0.0.0 without an auth string" in str(result.exception)
    assert prefect_server.status() is None  # nothing was started
