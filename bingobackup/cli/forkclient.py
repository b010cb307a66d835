"""The process a worker starts for a flow run: asks the fork server for the run's process.

Run as `python -S -I forkclient.py` (the work pool's command, `deployments.workpool.
FLOW_RUN_COMMAND`): it imports the standard library only, so it is up in milliseconds where
`python -m prefect.engine` spends 2-3 CPU-seconds importing Prefect and the flows. It hands
the fork server (`bingobackup.cli.forkserver`, started by `bingobackup worker start`) its
stdin/stdout/stderr, arguments, working directory and environment over the server's Unix
socket, gets the pid of the child forked for the run, passes SIGTERM/SIGINT/SIGHUP on to it
(Prefect cancels a run by signalling the process it started: this one) and exits as the
child did. Without a reachable fork server it becomes `python -m prefect.engine` itself, as
before, saying so once on stderr.

Nothing here may import a third-party module or anything of bingobackup: `-I` leaves
PYTHONPATH and site-packages out on purpose.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import struct
import sys
from typing import NoReturn

SOCKET_ENV = "BINGOBACKUP_FORK_SOCKET"
PYTHON_ENV = "BINGOBACKUP_FORK_PYTHON"
CLIENT_ENV = "BINGOBACKUP_FORK_CLIENT"  # this file's path (the pool's command runs it)
# The request: this header (payload length) carrying the three fds, then the JSON payload.
HEADER = struct.Struct("!Q")
RELAYED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def socket_directory() -> str:
    """A new directory only this user can enter (mkdtemp makes it 0700), for the fork
    server's socket (`worker start` makes it; here so the CLI's modules need not import the
    server, which imports them)."""
    import tempfile

    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return tempfile.mkdtemp(prefix="bingobackup-fork-", dir=base)


def engine_command() -> list[str]:
    """What the worker would have run without us: the worker's interpreter (the client's own
    is started isolated, without the site-packages Prefect lives in)."""
    python = os.environ.get(PYTHON_ENV) or sys.executable
    return [python, "-m", "prefect.engine", *sys.argv[1:]]


def fall_back(reason: str) -> None:
    sys.stderr.write(
        f"bingobackup: no fork server for this flow run ({reason}); "
        "starting it with `python -m prefect.engine` instead (slower start).\n"
    )
    sys.stderr.flush()
    command = engine_command()
    os.execve(command[0], command, os.environ)


def request_payload(argv: list[str], kind: str = "engine") -> bytes:
    """What the server needs to start the process: `kind` "engine" is a flow run's
    `python -m prefect.engine ARGV`, "cli" a `bingobackup ARGV` command (`cli/handoff.py`)."""
    request = {"kind": kind, "argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}
    return json.dumps(request).encode()


def read_line(connection: socket.socket, buffer: bytearray) -> str | None:
    """The next line the server sent, None when it closed the connection first."""
    while b"\n" not in buffer:
        chunk = connection.recv(4096)
        if not chunk:
            return None
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line.decode()


def exit_as(status: int) -> NoReturn:
    """Exit as the child did: its code, or killed by the same signal (what Prefect would have
    seen from a `python -m prefect.engine` it started itself)."""
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        sys.exit(code)
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
    sys.exit(128 - code)  # not reached unless the signal is blocked


def hand_over(path: str, payload: bytes) -> str:
    """Have the fork server at `path` start the process `payload` describes with this one's
    stdin/stdout/stderr, pass signals on to it and exit as it did. Returns only when nothing
    was started: why, for the caller to start it itself."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(path)
        socket.send_fds(connection, [HEADER.pack(len(payload))], [0, 1, 2])
        connection.sendall(payload)
    except OSError as error:
        connection.close()
        return f"cannot reach {path}: {error.strerror or error}"
    buffer = bytearray()
    try:
        started = read_line(connection, buffer)
    except OSError:
        started = None
    if started is None or not started.startswith("pid "):
        # The server went away (or refused) before forking: nothing of the run started yet.
        connection.close()
        return "the fork server closed the connection before starting the run"
    child = int(started.split()[1])
    # A pidfd names this process whatever happens to the pid number: signals never reach a
    # process that reused it. The server reaps the child only after it reported the exit.
    child_fd = os.pidfd_open(child)

    def relay(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(child_fd, signum)

    for signum in RELAYED_SIGNALS:
        signal.signal(signum, relay)
    try:
        ended = read_line(connection, buffer)
    except OSError:
        ended = None
    if ended is not None and ended.startswith("exit "):
        exit_as(int(ended.split()[1]))
    # The fork server died while the run went on: wait for the run, its status is lost.
    select.select([child_fd], [], [])
    sys.stderr.write("bingobackup: the fork server stopped during the run; its exit status is unknown.\n")
    sys.exit(1)


def main() -> None:
    path = os.environ.get(SOCKET_ENV)
    if not path:
        fall_back(f"{SOCKET_ENV} is not set")
        return
    fall_back(hand_over(path, request_payload(sys.argv[1:])))


if __name__ == "__main__":
    main()
