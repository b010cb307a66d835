"""The local Prefect server the CLI starts on demand (DESIGN.md §2.0).

Prefect's ephemeral mode starts a temporary server in every process (10–15 s), too slow for
a CLI called many times. So the first command that needs the Prefect API starts
`prefect server start` in the background (127.0.0.1, database under BINGOBACKUP_HOME) and
later commands reuse it. `PREFECT_API_URL`, when set, selects a team's server instead and
nothing is started.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 4200
START_TIMEOUT_SECONDS = 90.0


def bingobackup_home() -> Path:
    home = Path(os.environ.get("BINGOBACKUP_HOME", "~/.bingobackup")).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


@dataclass(frozen=True)
class ServerInfo:
    url: str  # the API URL, ".../api"
    pid: int | None  # None when the server is not ours (PREFECT_API_URL)
    log_path: Path | None

    @property
    def ui_url(self) -> str:
        return self.url.removesuffix("/api")


class PrefectServerError(RuntimeError):
    pass


def _state_file() -> Path:
    return bingobackup_home() / "prefect-server.json"


def _healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, TimeoutError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise PrefectServerError("no free TCP port on 127.0.0.1 for the local Prefect server")


def _read_state() -> ServerInfo | None:
    try:
        data = json.loads(_state_file().read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return ServerInfo(url=data["url"], pid=data["pid"], log_path=Path(data["log"]))


def _write_state(info: ServerInfo) -> None:
    tmp = _state_file().with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": info.url, "pid": info.pid, "log": str(info.log_path)}))
    os.replace(tmp, _state_file())


@contextlib.contextmanager
def _start_lock() -> Iterator[None]:
    # Two CLI commands started at once must not both start a server.
    with open(bingobackup_home() / "prefect-server.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def status() -> ServerInfo | None:
    """The server commands would use now, or None when ours is not running."""
    external = os.environ.get("PREFECT_API_URL")
    if external:
        return ServerInfo(url=external.rstrip("/"), pid=None, log_path=None)
    info = _read_state()
    if info and info.pid and _alive(info.pid) and _healthy(info.url):
        return info
    return None


def ensure_server(port: int | None = None) -> ServerInfo:
    """Return a healthy server, starting ours in the background when needed."""
    running = status()
    if running:
        if running.pid is None and not _healthy(running.url, timeout=5.0):
            raise PrefectServerError(
                f"PREFECT_API_URL={running.url} does not answer. Start that server, or unset "
                "PREFECT_API_URL to let bingobackup start a local one."
            )
        return running
    with _start_lock():
        running = status()
        if running:
            return running
        return _start(port or _free_port(DEFAULT_PORT))


def _start(port: int) -> ServerInfo:
    home = bingobackup_home()
    prefect_home = home / "prefect"
    prefect_home.mkdir(exist_ok=True)
    log_path = home / "prefect-server.log"
    prefect_bin = Path(sys.executable).with_name("prefect")
    env = {
        **os.environ,
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
    }
    env.pop("PREFECT_API_URL", None)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [str(prefect_bin), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # outlives the CLI command that started it
        )
    info = ServerInfo(url=f"http://127.0.0.1:{port}/api", pid=process.pid, log_path=log_path)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PrefectServerError(
                f"the local Prefect server exited with code {process.returncode} while starting; "
                f"see {log_path}"
            )
        if _healthy(info.url):
            _write_state(info)
            return info
        time.sleep(0.25)
    _terminate(process.pid)
    raise PrefectServerError(
        f"the local Prefect server did not answer within {START_TIMEOUT_SECONDS:.0f} s; see {log_path}"
    )


def _terminate(pid: int, timeout: float = 15.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def stop_server() -> bool:
    """Stop our local server; False when none was running."""
    info = _read_state()
    _state_file().unlink(missing_ok=True)
    if info is None or info.pid is None or not _alive(info.pid):
        return False
    _terminate(info.pid)
    return True
