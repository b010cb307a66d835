"""Long-running local services the CLI starts once and later commands reuse.

The local Prefect server and the demo's simulated BingoCloud are both started detached
(their own session, so they outlive the command), recorded in a small JSON file under
BINGOBACKUP_HOME, health-checked on every use, and stopped with their whole process group.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bingobackup.cli.environment import bingobackup_home
from bingobackup.errors import BingoBackupError
from bingobackup.files import replace_file


class ServiceError(BingoBackupError):
    pass


class PortTakenError(ServiceError):
    """Another process answered on the port the service being started was to serve."""


def free_port(preferred: int) -> int:
    """`preferred` when it is free on 127.0.0.1, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise ServiceError("no free TCP port on 127.0.0.1")


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
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


@dataclass(frozen=True)
class RunningService:
    url: str
    pid: int
    log_path: Path
    extra: dict[str, str]


@dataclass(frozen=True)
class BackgroundService:
    """One named service: `name` keys its state, lock and log files under BINGOBACKUP_HOME."""

    name: str
    health_path: str  # appended to the service URL
    start_timeout: float = 90.0

    @property
    def _state_file(self) -> Path:
        return bingobackup_home() / f"{self.name}.json"

    def _read(self) -> RunningService | None:
        try:
            data = json.loads(self._state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return RunningService(data["url"], data["pid"], Path(data["log"]), data.get("extra", {}))

    def status(self) -> RunningService | None:
        running = self._read()
        if running and _alive(running.pid) and http_ok(running.url + self.health_path):
            return running
        return None

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        # Two commands started at once must not both start the service.
        with open(bingobackup_home() / f"{self.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def ensure(
        self,
        command: list[str],
        url: str,
        env: dict[str, str] | None = None,
        extra: dict[str, str] | None = None,
        is_ours: Callable[[], bool] | None = None,
    ) -> RunningService:
        """The running service, or start `command` (which must serve `url`) and wait until healthy.

        `is_ours` tells our service from another that took the port first (two homes starting
        at the same moment both found it free): then ours is stopped and PortTakenError raised,
        rather than this home's commands talking to somebody else's service.
        """
        with self._lock():
            running = self.status()
            if running:
                return running
            log_path = bingobackup_home() / f"{self.name}.log"
            with open(log_path, "ab") as log:
                process = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                )
            deadline = time.monotonic() + self.start_timeout
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise ServiceError(
                        f"the {self.name} exited with code {process.returncode} while starting; see {log_path}"
                    )
                if http_ok(url + self.health_path):
                    if is_ours is not None and not is_ours():
                        _terminate(process.pid)
                        raise PortTakenError(f"another process already serves {url}")
                    running = RunningService(url, process.pid, log_path, extra or {})
                    state = {"url": url, "pid": process.pid, "log": str(log_path), "extra": extra or {}}
                    replace_file(self._state_file, json.dumps(state).encode())
                    return running
                time.sleep(0.25)
            _terminate(process.pid)
            raise ServiceError(
                f"the {self.name} did not answer within {self.start_timeout:.0f} s; see {log_path}"
            )

    def stop(self) -> bool:
        """Stop the service; False when it was not running."""
        running = self._read()
        self._state_file.unlink(missing_ok=True)
        if running is None or not _alive(running.pid):
            return False
        _terminate(running.pid)
        return True


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
