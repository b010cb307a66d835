"""`bingobackup worker start --host ID`: the agent's Prefect worker on a backup host.

It serves the host's work queue in the jobs' process work pool, so scheduled and started
runs of the jobs on that host execute here (each in its own process). It first checks that
this machine runs an OS on the backup-host list (/etc/os-release, architecture), since the
cloud may not have said which OS the VM runs. A host registered with a `--device-root`
other than `/` is a simulator's: its worker runs beside the simulator, not inside the VM,
so there is no VM OS to check here.
`bingobackup worker install-service --host ID` makes systemd run it (docs/agent.md).
"""

from __future__ import annotations

import base64
import os
import shlex
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import typer

from bingobackup.cli.background import BackgroundService, RunningService, free_port
from bingobackup.cli.common import acting_user_name, console, err_console, prefect_api, registry
from bingobackup.cli.environment import bingobackup_home
from bingobackup.cli.prefect_server import client_environment
from bingobackup.errors import BingoBackupError
from bingobackup.files import replace_file

app = typer.Typer(help="The Prefect worker that runs jobs on a backup host.", no_args_is_help=True)

_POOL_OPTION = typer.Option(
    None, "--pool", help="Work pool (default: BINGOBACKUP_WORK_POOL or 'bingobackup')"
)
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
DEFAULT_ENV_FILE = Path("/etc/bingobackup/worker.env")


@app.command()
def start(
    host: str = typer.Option(..., "--host", help="Instance id of this backup host (its jobs' work queue)"),
    pool: str = _POOL_OPTION,
    healthcheck_port: int = typer.Option(
        None,
        "--healthcheck-port",
        help="Also answer GET http://127.0.0.1:PORT/health (200 while the worker polls its queue)",
    ),
) -> None:
    """Run the jobs of one backup host until stopped (Ctrl-C or SIGTERM)."""
    from bingobackup.resources.access import backup_host_for
    from bingobackup.resources.hosts import read_local_os

    with registry() as (store, user):
        registered = backup_host_for(store, user, host)
    if registered.device_root == "/":
        local_os = read_local_os()
        console.print(f"This machine runs {local_os}, a supported backup-host OS.")
    else:
        console.print(f"Simulated backup host (device root {registered.device_root}): OS check skipped.")
    with prefect_api() as server:
        from prefect.client.orchestration import get_client

        from deployments.workpool import ensure_work_pool, ensure_work_queue, work_pool_name, worker_command

        pool = pool or work_pool_name()
        with get_client(sync_client=True) as client:
            ensure_work_pool(client, pool)
            ensure_work_queue(client, pool, host)
        console.print(f"Worker for backup host [bold]{host}[/] on work pool {pool} ({server.ui_url})")
        # The flow runs it starts inherit this: the same client settings as this command's.
        env = {**os.environ, **client_environment(server)}
    env.update(start_fork_server(env, host))
    command = worker_command(sys.executable, pool, host, f"{host}@{socket.gethostname()}")
    if healthcheck_port is not None:
        # Prefect's worker health server, on loopback only (its default is every address).
        command.append("--with-healthcheck")
        env |= {
            "PREFECT_WORKER_WEBSERVER_HOST": "127.0.0.1",
            "PREFECT_WORKER_WEBSERVER_PORT": str(healthcheck_port),
        }
    sys.stdout.flush()
    # Replace this process: signals (Ctrl-C, SIGTERM from a service manager) reach the worker itself.
    os.execvpe(command[0], command, env)


_BACKGROUND_PREFIX = "worker-"


def _background(host: str) -> BackgroundService:
    # `host` is an instance id (letters, digits, dashes): safe in a file name.
    return BackgroundService(name=f"{_BACKGROUND_PREFIX}{host}", health_path="/health")


def start_background_worker(host: str, env: dict[str, str] | None = None) -> RunningService:
    """`worker start --host ID` detached, as the demo's control room runs one per backup host
    (a real backup host runs it as a service: `install-service`). Reused while it answers its
    health check; `env` adds settings (e.g. PREFECT_WORKER_QUERY_SECONDS) to this environment."""
    service = _background(host)
    running = service.status()
    if running is not None:
        return running
    port = free_port(0)
    command = [sys.executable, "-m", "bingobackup.cli.main", "worker", "start", "--host", host]
    command += ["--healthcheck-port", str(port)]
    return service.ensure(command, f"http://127.0.0.1:{port}", env={**os.environ, **(env or {})})


def stop_background_workers() -> list[str]:
    """Stop every worker `start_background_worker` started under this home; the hosts they served."""
    stopped = []
    for state in sorted(bingobackup_home().glob(f"{_BACKGROUND_PREFIX}*.json")):
        host = state.stem.removeprefix(_BACKGROUND_PREFIX)
        if _background(host).stop():
            stopped.append(host)
    return stopped


def start_fork_server(env: dict[str, str], host: str) -> dict[str, str]:
    """Start the fork server the worker's flow runs are forked from (`forkserver.py`) and
    return what the worker's environment needs to reach it (see workpool.FLOW_RUN_COMMAND).

    It is a child of this process, which becomes the worker: it keeps the write end of a
    pipe across the exec, so the server sees the worker end (EOF), finishes the runs it
    forked and exits. It listens at once and imports the flows meanwhile; runs that arrive
    before it is ready wait, and runs that cannot reach it start as before. Once ready it
    tells this machine's `backup run` commands where it listens (cli/handoff.py).
    """
    import subprocess

    from bingobackup.cli import forkclient, handoff

    socket_path = Path(forkclient.socket_directory()) / "forkserver.sock"
    lifeline_read, lifeline_write = os.pipe()
    subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bingobackup.cli.forkserver",
            "--socket",
            str(socket_path),
            "--lifeline",
            str(lifeline_read),
            "--advert",
            str(handoff.advert_path(bingobackup_home(), host)),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        pass_fds=(lifeline_read,),
    )
    os.close(lifeline_read)
    os.set_inheritable(lifeline_write, True)
    return {
        forkclient.SOCKET_ENV: str(socket_path),
        forkclient.PYTHON_ENV: sys.executable,
        forkclient.CLIENT_ENV: forkclient.__file__,
    }


def unit_name(host: str) -> str:
    return f"bingobackup-worker-{host}.service"


def service_unit(host: str, pool: str, api_url: str, user: str | None, env_file: Path) -> str:
    """The systemd unit that keeps `worker start` running for `host`, with this interpreter.

    Only non-secret settings are written here (units are world-readable); secrets such as
    PREFECT_API_AUTH_STRING belong in `env_file`, which may be absent.
    """
    environment = {"PREFECT_API_URL": api_url, "BINGOBACKUP_WORK_POOL": pool}
    if user:
        environment["BINGOBACKUP_USER"] = user
    # `python -m`, not the console script: the same interpreter and package as this command.
    command = [sys.executable, "-m", "bingobackup.cli.main", "worker", "start", "--host", host]
    lines = [
        "[Unit]",
        f"Description=bingobackup worker of backup host {host}",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        # One line of assignments: systemd takes several, and the unit stays one key per name.
        "Environment=" + " ".join(shlex.quote(f"{k}={v}") for k, v in environment.items()),
        f"EnvironmentFile=-{env_file}",
        f"ExecStart={shlex.join(command)}",
        "Restart=always",
        "RestartSec=10",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def checked_api_url(url: str) -> str:
    """A Prefect API URL for a unit or script, refused if it carries credentials (a unit file
    is readable by every user of the host)."""
    url = url.rstrip("/")
    parts = urlsplit(url)
    # Checked first: the other message repeats the URL.
    if parts.username or parts.password:
        raise BingoBackupError(
            "The Prefect API URL carries credentials, which would be written to a world-readable "
            f"unit file. Remove them from the URL and put PREFECT_API_AUTH_STRING in {DEFAULT_ENV_FILE}."
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BingoBackupError(
            f"The Prefect API URL '{url}' is not an http(s) URL like http://server:4200/api."
        )
    return url


def api_refuses_without_auth(api_url: str, auth_string: str | None) -> bool:
    """True when the Prefect server at `api_url` refuses a request for want of (the right)
    basic-auth string. Prefect checks it on every route but /health and /ready."""
    request = urllib.request.Request(f"{api_url}/admin/version")
    if auth_string:
        token = base64.b64encode(auth_string.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10):
            return False
    except urllib.error.HTTPError as error:
        return error.code == 401
    except OSError:
        return False  # unreachable: the registry look-up that follows says so


def write_auth_string(env_file: Path, auth_string: str) -> None:
    """Keep PREFECT_API_AUTH_STRING in the unit's environment file (mode 0600), other lines kept."""
    try:
        lines = env_file.read_text().splitlines()
    except FileNotFoundError:
        lines = []
    kept = [line for line in lines if not line.startswith("PREFECT_API_AUTH_STRING=")]
    env_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    replace_file(
        env_file, "\n".join([*kept, f"PREFECT_API_AUTH_STRING={auth_string}", ""]).encode(), mode=0o600
    )


@app.command("install-service")
def install_service(
    host: str = typer.Option(..., "--host", help="Instance id of this backup host (its jobs' work queue)"),
    pool: str = _POOL_OPTION,
    unit_dir: Path = typer.Option(DEFAULT_UNIT_DIR, "--unit-dir", help="Where to write the systemd unit"),
    env_file: Path = typer.Option(
        DEFAULT_ENV_FILE, "--env-file", help="Optional file of secrets (KEY=VALUE lines) the unit reads"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the unit; write nothing"),
) -> None:
    """Write a systemd unit that runs `worker start --host ID` against PREFECT_API_URL (root)."""
    from bingobackup.resources.access import backup_host_for

    if not os.environ.get("PREFECT_API_URL"):
        raise BingoBackupError(
            "Set PREFECT_API_URL to the Prefect server this worker reports to (as printed by "
            "`bingobackup host install-command ID`), then run the command again."
        )
    api_url = checked_api_url(os.environ["PREFECT_API_URL"])
    auth_string = os.environ.get("PREFECT_API_AUTH_STRING") or None
    if api_refuses_without_auth(api_url, auth_string):
        refused = " and refused the one given" if auth_string else ""
        raise BingoBackupError(
            f"The Prefect server at {api_url} requires its basic-auth string{refused}. Set "
            "PREFECT_API_AUTH_STRING to it (`bingobackup server start` said where the server keeps it) and "
            f"run again: it is written to {env_file} (mode 0600), which the unit reads."
        )
    # The service would otherwise restart forever on a host the server does not know.
    with registry() as (store, user):
        backup_host_for(store, user, host)
    from deployments.workpool import work_pool_name

    unit = service_unit(host, pool or work_pool_name(), api_url, acting_user_name(), env_file)
    path = unit_dir / unit_name(host)
    if dry_run:
        err_console.print(f"[bold]{path}[/] (not written: --dry-run)", highlight=False)
        if auth_string:
            err_console.print(
                f"PREFECT_API_AUTH_STRING would be kept in {env_file} (mode 0600)", highlight=False
            )
        print(unit, end="")
        return
    if not unit_dir.is_dir():
        raise BingoBackupError(
            f"Unit directory {unit_dir} does not exist: is this a systemd host? Pass --unit-dir."
        )
    if auth_string:  # first: the unit never runs without it
        try:
            write_auth_string(env_file, auth_string)
        except PermissionError:
            raise BingoBackupError(f"Cannot write {env_file}: run the command as root (sudo).") from None
        console.print(f"Kept PREFECT_API_AUTH_STRING in [bold]{env_file}[/] (mode 0600).", highlight=False)
    try:
        path.write_text(unit)
    except PermissionError:
        raise BingoBackupError(f"Cannot write {path}: run the command as root (sudo).") from None
    console.print(f"Wrote [bold]{path}[/]. Start it now and at every boot with:", highlight=False)
    print(f"systemctl daemon-reload && systemctl enable --now {unit_name(host)}")
