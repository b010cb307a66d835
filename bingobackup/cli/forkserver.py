"""The fork server of a worker: flow-run processes forked from one that has imported it all.

`python -m prefect.engine`, which a process worker starts for each flow run, spends 2-3
CPU-seconds importing Prefect, the flows, pandas and DuckDB before the run goes Running: 100
runs due at one minute on a 2-core backup host took minutes to start. `bingobackup worker
start` therefore starts this server beside Prefect's worker (as gunicorn --preload and
multiprocessing's forkserver do). It imports those modules once, then listens on a Unix
socket in a directory only its user can enter; the work pool's command for a run
(`forkclient.py`) sends it the run's stdin/stdout/stderr, arguments, working directory and
environment, and the server forks a child that takes them on and runs what `python -m
prefect.engine` runs. It reports the child's pid and, after reaping it, its exit status;
when the client goes away first (the worker killed it hard), the child is killed too. A
`bingobackup backup run` typed on the same machine is forked the same way (`cli/handoff.py`):
its request's kind is "cli", and the child runs the command instead of the engine.

Every child reports when its flow run has begun (a byte on a pipe, written by a hook on
Prefect's flow engines' `begin_run`) and then lowers its CPU priority (`RUNNING_NICENESS`):
in a burst (100 runs scheduled at one minute) the runs already backing up step back, and the
starts, and the Prefect server they wait on, get the cores first.

Pacing (off unless `max_starting` > 0): at most `max_starting` children are in their start
(fork → Running) at a time; the next request is forked when one of them reports Running,
ends, or has been starting for `START_TIMEOUT` seconds. Requests beyond that wait in arrival
order; a client that goes away meanwhile is dropped.

Fork safety: the server starts no thread, event loop or API client (checked after the
imports), so each child is a whole copy of a single-threaded process. Settings Prefect read
at import (its root settings context, the logging configuration) are read again in the
child from the run's environment. The environment carries secrets: it travels only over the
private socket (the peer's uid is checked too) and is never logged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from bingobackup.cli.forkclient import HEADER

# What a flow run's process imports before it runs: each module here is one the child does
# not import again. Import errors are the server's to report (the client falls back).
PRELOADED = (
    "prefect",
    "prefect.engine",
    "prefect.flow_engine",
    "prefect.runner",
    "bingobackup",
    "catalog",
    "catalog.query",  # the package imports its readers (DuckDB) only when used
    "catalog.browse",
    "tasks",
    "flows.backup",
    "flows.restore",
    "flows.prune",
    "flows.gc",
    "flows.verify",
    # What Prefect imports only once a flow runs (measured in a child's profile: 0.1 s of a
    # handed-over backup's start): parameter serialisation, the task graph, its event loop.
    "fastapi.encoders",
    "prefect.utilities.visualization",
    "anyio._backends._asyncio",
    # `bingobackup backup run` handed over by the CLI (cli/handoff.py): the command itself.
    "bingobackup.cli.main",
    "bingobackup.cli.app",
    "bingobackup.backup.job",
    "tasks.blocks",
)
KINDS = ("engine", "cli")
REQUEST_TIMEOUT = 10.0  # seconds a client has to send its request once connected
# Children in their start at once (`--max-starting`), by default none (no pacing): a start
# is 0.2 CPU-s in the child and otherwise waits for the Prefect server's answers, so a few
# start slots let the server's latency, not the cores, set the pace. Measured (100 runs, two
# hosts, PostgreSQL server, docs/benchmarks.md "Scheduler"): with 4 slots per host each start
# took 18-28 s, 67 runs were Running 260 s after they were due.
DEFAULT_MAX_STARTING = 0
# A child that has not reported Running by then no longer holds back the next one (a hook that
# stopped firing after a Prefect upgrade slows bursts down, it does not stop them).
START_TIMEOUT = 30.0
# A forked run lowers its CPU priority to this once it is Running: a start is short and
# latency-bound (the run is late until it is Running), a backup's data path is throughput-
# bound and loses nothing by letting a few starts go first; when nothing else wants the
# cores it runs as fast as ever. At 0 the runs already backing up (50 per host in a burst)
# took most of the CPU, and each start took 8-29 s.
RUNNING_NICENESS = 15
MAX_PAYLOAD = 16 * 2**20
_PEER_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass
class FlowRunRequest:
    """One client's request: the run's process as it would have been started, `python -m
    prefect.engine ARGV` (kind "engine") or `bingobackup ARGV` (kind "cli")."""

    fds: list[int]
    argv: list[str]
    cwd: str
    env: dict[str, str]
    kind: str = "engine"

    @property
    def label(self) -> str:
        """What the server's log calls the process (never its environment's secrets)."""
        if self.kind == "cli":
            from bingobackup.cli.handoff import command_words

            return "command `bingobackup " + " ".join(command_words(self.argv)) + "`"
        return f"flow run {self.env.get('PREFECT__FLOW_RUN_ID', '?')}"


@dataclass
class _Child:
    pid: int
    label: str
    pidfd: int
    connection: socket.socket
    started: int | None  # read end of the pipe the child reports Running on; None once it has
    forked_at: float


@dataclass
class _Waiting:
    """A request that waits for a free start slot (pacing)."""

    connection: socket.socket
    request: FlowRunRequest


@dataclass
class _Server:
    listener: socket.socket
    lifeline: int | None
    advert: Path | None = None
    max_starting: int = 0  # 0: fork every request at once
    selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)
    children: dict[int, _Child] = field(default_factory=dict)  # by pid
    waiting: deque[_Waiting] = field(default_factory=deque)
    accepting: bool = True

    def starting(self) -> int:
        return sum(child.started is not None for child in self.children.values())

    def may_fork(self) -> bool:
        return self.max_starting <= 0 or self.starting() < self.max_starting


MAX_STARTING_ENV = "BINGOBACKUP_FORK_MAX_STARTING"


def default_max_starting() -> int:
    """`$BINGOBACKUP_FORK_MAX_STARTING` (the worker's environment), else no pacing (0)."""
    given = os.environ.get(MAX_STARTING_ENV, "").strip()
    if not given:
        return DEFAULT_MAX_STARTING
    try:
        value = int(given)
    except ValueError:
        value = -1
    if value < 0:
        raise SystemExit(
            f"{MAX_STARTING_ENV}={given!r} is not a number of runs: give 0 (no pacing) or more, or unset it"
        )
    return value


def say(message: str) -> None:
    """One line to the worker's log (its journal). Never the environment."""
    sys.stderr.write(f"bingobackup fork server: {message}\n")
    sys.stderr.flush()


def preload() -> None:
    import importlib

    from bingobackup.cli.common import collector_paused_for_imports

    # Frozen too: the children's collections never walk (and so never write to, copying the
    # pages the fork shares) what the server imported.
    with collector_paused_for_imports():
        for module in PRELOADED:
            importlib.import_module(module)
    # Fork safety: a fork copies only the calling thread, so a thread started by an import
    # (a log shipper, an event loop, an API client's pool) would be missing, its locks held
    # forever, in every child. None of these imports starts one; refuse to serve if that
    # ever changes rather than fork a broken copy.
    if threading.active_count() != 1:
        names = ", ".join(t.name for t in threading.enumerate() if t is not threading.main_thread())
        raise RuntimeError(f"importing the flows started threads ({names}): forking is not safe")


def _read_request(connection: socket.socket) -> FlowRunRequest:
    connection.settimeout(REQUEST_TIMEOUT)
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEER_CREDENTIALS.size)
    _pid, uid, _gid = _PEER_CREDENTIALS.unpack(credentials)
    if uid != os.getuid():
        raise PermissionError(f"a process of uid {uid} connected; only uid {os.getuid()} may")
    header, fds, _flags, _address = socket.recv_fds(connection, HEADER.size, 3)
    try:
        while len(header) < HEADER.size:
            more = connection.recv(HEADER.size - len(header))
            if not more:
                raise ConnectionError("the client closed the connection mid-request")
            header += more
        (length,) = HEADER.unpack(header)
        if len(fds) != 3 or length > MAX_PAYLOAD:
            raise ValueError("malformed request")
        payload = bytearray()
        while len(payload) < length:
            more = connection.recv(min(length - len(payload), 1 << 20))
            if not more:
                raise ConnectionError("the client closed the connection mid-request")
            payload += more
        request = json.loads(payload)
        kind = str(request.get("kind", "engine"))
        if kind not in KINDS:
            raise ValueError(f"unknown kind of process {kind!r}")
        return FlowRunRequest(fds, list(request["argv"]), str(request["cwd"]), dict(request["env"]), kind)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def _close_in_child(server: _Server) -> None:
    """In a forked child: drop every descriptor of the server's (the listener, the other
    runs' connections, pidfds and start pipes, the waiting requests, the lifeline), so none
    outlives the server through it."""
    server.selector.close()
    server.listener.close()
    if server.lifeline is not None:
        os.close(server.lifeline)
    for child in server.children.values():
        os.close(child.pidfd)
        if child.started is not None:
            os.close(child.started)
        child.connection.close()
    for waiting in server.waiting:
        waiting.connection.close()
        for fd in waiting.request.fds:
            os.close(fd)


@dataclass
class ForkedRun:
    """In a forked child: the run's request and where to report that it is Running."""

    request: FlowRunRequest
    started_fd: int


def _accept(server: _Server) -> ForkedRun | None:
    """Serve one connection: fork its run now, or queue it while `max_starting` runs are
    starting. In the parent None, in a child its run."""
    connection, _ = server.listener.accept()
    try:
        request = _read_request(connection)
    except (OSError, ValueError, KeyError, TypeError) as error:
        say(f"refused a request: {type(error).__name__}: {error}")
        connection.close()
        return None
    connection.setblocking(True)
    if server.may_fork():
        return _fork(server, connection, request)
    waiting = _Waiting(connection, request)
    server.waiting.append(waiting)
    server.selector.register(connection, selectors.EVENT_READ, ("waiting", waiting))
    say(f"{request.label} waits for a start slot ({server.starting()} runs starting)")
    return None


def _fork(server: _Server, connection: socket.socket, request: FlowRunRequest) -> ForkedRun | None:
    started_read, started_write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(started_read)
        connection.close()
        _close_in_child(server)
        return ForkedRun(request, started_write)
    os.close(started_write)
    for fd in request.fds:
        os.close(fd)
    # The child is not reaped until its exit is reported, so the pidfd cannot name another.
    child = _Child(pid, request.label, os.pidfd_open(pid), connection, started_read, time.monotonic())
    server.children[pid] = child
    # A client gone already reads as EOF below, and its child is killed then.
    with contextlib.suppress(OSError):
        connection.sendall(f"pid {pid}\n".encode())
    server.selector.register(child.pidfd, selectors.EVENT_READ, ("exited", child))
    server.selector.register(connection, selectors.EVENT_READ, ("client", child))
    server.selector.register(started_read, selectors.EVENT_READ, ("running", child))
    say(f"{request.label} started as forked process {pid}")
    return None


def _start_over(server: _Server, child: _Child, why: str | None = None) -> None:
    """`child`'s start is over (it reported Running, ended, or took too long)."""
    if child.started is None:
        return
    server.selector.unregister(child.started)
    os.close(child.started)
    child.started = None
    if why:
        say(f"{child.label} (process {child.pid}) {why}")


def _fork_waiting(server: _Server) -> ForkedRun | None:
    """Fork waiting requests, oldest first, while start slots are free."""
    while server.waiting and server.may_fork():
        waiting = server.waiting.popleft()
        server.selector.unregister(waiting.connection)
        forked = _fork(server, waiting.connection, waiting.request)
        if forked is not None:
            return forked
    return None


def _drop_waiting(server: _Server, waiting: _Waiting) -> None:
    """A waiting client's connection is readable: it went away (Prefect killed it, or the
    run was cancelled) before its run was forked."""
    server.waiting.remove(waiting)
    server.selector.unregister(waiting.connection)
    waiting.connection.close()
    for fd in waiting.request.fds:
        os.close(fd)
    say(f"{waiting.request.label}: its client went away before it was forked")


def _timed_out_starts(server: _Server) -> None:
    now = time.monotonic()
    for child in list(server.children.values()):
        if child.started is not None and now - child.forked_at > START_TIMEOUT:
            _start_over(
                server, child, f"has not reported Running in {START_TIMEOUT:.0f} s; forking the next run"
            )


def _reap(server: _Server, child: _Child) -> None:
    _, status, usage = os.wait4(child.pid, 0)
    _start_over(server, child)
    server.selector.unregister(child.pidfd)
    server.selector.unregister(child.connection)
    os.close(child.pidfd)
    with contextlib.suppress(OSError):
        child.connection.sendall(f"exit {status}\n".encode())
    child.connection.close()
    del server.children[child.pid]
    code = os.waitstatus_to_exitcode(status)
    ending = f"exit status {code}" if code >= 0 else f"killed by signal {-code}"
    cpu = usage.ru_utime + usage.ru_stime
    say(f"{child.label} (process {child.pid}) ended: {ending}, {cpu:.2f} CPU-s after the fork")


def _client_event(child: _Child) -> None:
    """The client's connection is readable: it sends nothing after its request, so this is
    its end (or an error). Prefect kills a run's process hard when it ignores SIGTERM; the
    client cannot pass SIGKILL on, so its death takes the child along."""
    try:
        data = child.connection.recv(64)
    except OSError:
        data = b""
    if not data:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(child.pidfd, signal.SIGKILL)


def _stop_accepting(server: _Server, socket_path: Path) -> None:
    if server.accepting:
        server.accepting = False
        if server.advert is not None:
            server.advert.unlink(missing_ok=True)
        server.selector.unregister(server.listener)
        server.listener.close()
        socket_path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            socket_path.parent.rmdir()


def serve(server: _Server, socket_path: Path) -> ForkedRun | None:
    """Fork a child per request until told to stop and the runs it forked (and those
    waiting for a start slot) have ended.

    Returns None in the server when done, and its run in each forked child (which then
    leaves the loop and becomes the run's process).
    """
    stop = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.selector.register(server.listener, selectors.EVENT_READ, ("listener", None))
    if server.lifeline is not None:
        server.selector.register(server.lifeline, selectors.EVENT_READ, ("lifeline", None))
    while True:
        if stop:
            _stop_accepting(server, socket_path)
        if not server.accepting and not server.children and not server.waiting:
            return None
        # A short timeout: a stop signal between the checks and select is seen within 1 s.
        for key, _ in server.selector.select(timeout=1.0):
            kind, child = key.data
            if kind == "listener" and server.accepting:
                forked = _accept(server)
                if forked is not None:
                    return forked
            elif kind == "exited" and child.pid in server.children:
                _reap(server, child)
            elif kind == "running" and child.started is not None:
                seconds, cpu = time.monotonic() - child.forked_at, _cpu_seconds(child.pid)
                _start_over(server, child, f"is Running, {seconds:.1f} s and {cpu:.2f} CPU-s after the fork")
            elif kind == "client" and child.pid in server.children:
                _client_event(child)
            elif kind == "waiting" and child in server.waiting:
                _drop_waiting(server, child)
            elif kind == "lifeline":
                # The worker ended (its end of the pipe closed): no new runs will come.
                assert server.lifeline is not None  # registered only when given
                server.selector.unregister(server.lifeline)
                stop = True
        _timed_out_starts(server)
        forked = _fork_waiting(server)
        if forked is not None:
            return forked


def yield_to_starts() -> None:
    """Lower every thread of this process to `RUNNING_NICENESS` (a nice value is per thread
    on Linux; threads started later inherit their creator's)."""
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            if os.getpriority(os.PRIO_PROCESS, int(tid)) < RUNNING_NICENESS:
                os.setpriority(os.PRIO_PROCESS, int(tid), RUNNING_NICENESS)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` so far (0 when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _report_running(started_fd: int, step_back: bool) -> None:
    """Write a byte to `started_fd` (and close it) once this process's flow run has begun
    (Prefect's engines' `begin_run`: the run proposed Running), whatever its outcome; the
    fork server then forks the next waiting run. Then, if `step_back`, lower this process's
    CPU priority (`yield_to_starts`)."""
    from prefect.flow_engine import AsyncFlowRunEngine, FlowRunEngine

    def report() -> None:
        nonlocal started_fd
        if started_fd >= 0:
            with contextlib.suppress(OSError):
                os.write(started_fd, b"R")
            os.close(started_fd)
            started_fd = -1
            if step_back:
                yield_to_starts()

    sync_begin, async_begin = FlowRunEngine.begin_run, AsyncFlowRunEngine.begin_run

    def begin_run(self: Any) -> Any:
        try:
            return sync_begin(self)
        finally:
            report()

    async def begin_run_async(self: Any) -> Any:
        try:
            return await async_begin(self)
        finally:
            report()

    FlowRunEngine.begin_run = begin_run  # type: ignore[method-assign]
    AsyncFlowRunEngine.begin_run = begin_run_async  # type: ignore[method-assign]


def advertise(advert: Path, socket_path: Path) -> None:
    """Tell `bingobackup` commands on this machine where this ready server listens
    (`cli/handoff.py`), and with which interpreter and code, which theirs must match."""
    from bingobackup.cli.handoff import advertisement
    from bingobackup.files import replace_file

    advert.parent.mkdir(parents=True, exist_ok=True)
    replace_file(advert, json.dumps(advertisement(socket_path)).encode())


def _exit_without_teardown(code: object) -> NoReturn:
    """End a forked command as the interpreter would, less its teardown: threads joined and
    Prefect's last events and logs sent (threading's exit hooks), atexit handlers, the
    streams flushed; then out, as multiprocessing ends its forked children. The teardown
    would free the fork server's whole heap object by object, copying each page the fork
    shares with the server first: 0.1-0.4 s after the command's last line, for nothing."""
    import atexit

    threading._shutdown()  # type: ignore[attr-defined]  # what the interpreter runs first at exit
    atexit._run_exitfuncs()
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): printed, status 1, as by the interpreter
        sys.stderr.write(f"{code}\n")
        status = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken pipe: nothing to keep
            stream.flush()
    os._exit(status)


def _logging_inputs() -> object:
    """Everything Prefect's logging set-up reads (its settings, the levels its logging.yml
    names, the PREFECT_LOGGING_* overrides), or None when it reads a file of the operator's
    (which may have changed since the server read it).

    The same inputs give the same configuration: a child whose run's environment leaves them
    as the server had them keeps the server's instead of building it again (≈ 50 ms of a
    handed-over backup's start: the template is filled from every setting serialised).
    """
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.logging.config_path.exists():  # else Prefect's own logging.yml
        return None
    overrides = sorted((k, v) for k, v in os.environ.items() if k.startswith("PREFECT_LOGGING_"))
    return (settings.logging, settings.internal.logging_level, settings.server.logging_level, overrides)


def become(run: ForkedRun) -> None:
    """In the forked child: take on the request's process state, then run what it asks for."""
    request = run.request
    for target, fd in enumerate(request.fds):
        if fd != target:
            os.dup2(fd, target)
            os.close(fd)
    os.chdir(request.cwd)
    os.environ.clear()
    os.environ.update(request.env)
    if request.kind == "cli":
        from bingobackup.cli.environment import LOGGING_ENVIRONMENT

        for name, value in LOGGING_ENVIRONMENT.items():  # as `bingobackup.cli.main` sets them
            os.environ.setdefault(name, value)
    # As a new interpreter has them (the server's own handlers stop its loop).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    # Prefect read its settings and configured logging at import, from the server's
    # environment: read both again from the run's (its API URL and key, flow run id,
    # logging levels and extra loggers, API logging switch).
    import prefect.context
    import prefect.logging.configuration

    inherited = _logging_inputs()
    prefect.context.refresh_global_settings_context()
    if _logging_inputs() != inherited:
        prefect.logging.configuration.setup_logging(incremental=False)
    # A command typed by a user (kind "cli") reports its start too, but keeps its priority:
    # stepping back is for the worker's scheduled runs.
    _report_running(run.started_fd, step_back=request.kind == "engine")
    if request.kind == "cli":
        from bingobackup.cli.main import run_here

        sys.argv = ["bingobackup", *request.argv]
        try:
            run_here()
        except SystemExit as stop:
            _exit_without_teardown(stop.code)
        _exit_without_teardown(0)
    import runpy

    sys.argv = ["prefect.engine", *request.argv]
    # The engine's module body runs again as __main__ (as in `python -m`), beside the
    # imported prefect.engine whose names it shares: runpy's warning about that is moot.
    warnings.filterwarnings("ignore", "'prefect.engine' found in sys.modules", RuntimeWarning)
    runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", type=Path, required=True, help="Unix socket path to listen on")
    parser.add_argument("--lifeline", type=int, help="fd whose EOF means the worker ended")
    parser.add_argument("--advert", type=Path, help="file to tell this machine's commands where it listens")
    parser.add_argument(
        "--max-starting",
        type=int,
        default=default_max_starting(),
        help=f"runs in their start at once (default ${MAX_STARTING_ENV}, else 0: no pacing)",
    )
    args = parser.parse_args(argv)
    os.umask(0o077)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # Listening before the imports: runs due meanwhile wait in the backlog instead of
    # falling back to a slow start of their own.
    listener.bind(str(args.socket))
    listener.listen(256)
    started = time.process_time()
    try:
        preload()
    except Exception as error:
        say(f"cannot preload the flows, flow runs start without it: {type(error).__name__}: {error}")
        listener.close()
        args.socket.unlink(missing_ok=True)
        sys.exit(1)
    say(
        f"process {os.getpid()} ready on {args.socket} (imports took {time.process_time() - started:.1f} CPU-s)"
    )
    pid = os.getpid()
    server = _Server(listener, args.lifeline, args.advert, max_starting=args.max_starting)
    if args.advert is not None:
        advertise(args.advert, args.socket)
    try:
        run = serve(server, args.socket)
    finally:
        if server.accepting and args.advert is not None and os.getpid() == pid:
            args.advert.unlink(missing_ok=True)  # the server stopped without _stop_accepting
    if run is None:
        return
    become(run)


if __name__ == "__main__":
    main()
