"""The local Prefect server the CLI starts on demand (DESIGN.md §2.0).

Prefect's ephemeral mode starts a temporary server in every process (10–15 s), too slow for
a CLI called many times. So the first command that needs the Prefect API starts
`prefect server start` in the background (127.0.0.1, database under BINGOBACKUP_HOME) and
later commands reuse it. `PREFECT_API_URL`, when set, selects a team's server instead and
nothing is started.

`bingobackup server start --host ADDRESS` makes it listen beyond this machine; then it
requires Prefect's basic-auth string (`PREFECT_SERVER_API_AUTH_STRING`), which Prefect OSS
checks on every API request but `/health` and `/ready`. The string is kept under
BINGOBACKUP_HOME (mode 0600) and handed to this home's commands and the processes they start
(`PREFECT_API_AUTH_STRING`); anybody who has it can do anything (docs/security.md).

`bingobackup server start --database postgresql+asyncpg://…` keeps the server's data in a
PostgreSQL database instead of the SQLite file, as a team server shared by several backup
hosts should (docs/deploy.md). The URL is kept under BINGOBACKUP_HOME (mode 0600), so every
later start of this home's server uses the same database, and it reaches the server through
its environment (`PREFECT_API_DATABASE_CONNECTION_URL`), never its command line; whatever
we print shows it with the password masked.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import secrets
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bingobackup.addresses import is_loopback
from bingobackup.cli.background import (
    BackgroundService,
    PortTakenError,
    ServiceError,
    free_port,
    http_ok,
)
from bingobackup.cli.environment import bingobackup_home
from bingobackup.files import replace_file

DEFAULT_PORT = 4200
LOOPBACK = "127.0.0.1"
_START_TRIES = 3
_SERVICE = BackgroundService(name="prefect-server", health_path="/health")


@dataclass(frozen=True)
class ServerInfo:
    url: str  # the API URL, ".../api"
    pid: int | None  # None when the server is not ours (PREFECT_API_URL)
    log_path: Path | None
    host: str = LOOPBACK  # the address ours listens on
    # Ours when it requires basic auth; for PREFECT_API_URL, Prefect reads PREFECT_API_AUTH_STRING.
    auth_string: str | None = field(default=None, repr=False)
    database: str = "local SQLite"  # ours: where it keeps its data, the password masked

    @property
    def ui_url(self) -> str:
        return self.url.removesuffix("/api")


class PrefectServerError(ServiceError):
    pass


def client_settings(info: ServerInfo) -> dict[Any, Any]:
    """Prefect client settings for talking to `info`'s server (for `temporary_settings`)."""
    from prefect.settings import (
        PREFECT_API_AUTH_STRING,
        PREFECT_API_SSL_CERT_FILE,
        PREFECT_API_URL,
        PREFECT_CLIENT_CSRF_SUPPORT_ENABLED,
    )

    updates: dict[Any, Any] = {PREFECT_API_URL: info.url}
    if info.auth_string is not None:
        updates[PREFECT_API_AUTH_STRING] = info.auth_string
    if info.pid is not None:
        # Our server runs without CSRF protection (see ensure_server): a client that supports
        # it first fetches a token, one round trip per new API client, for nothing.
        updates[PREFECT_CLIENT_CSRF_SUPPORT_ENABLED] = False
        updates[PREFECT_API_SSL_CERT_FILE] = str(_no_tls_peer_ca_file())
    return updates


def client_environment(info: ServerInfo) -> dict[str, str]:
    """`client_settings` as environment variables, for processes we start (the worker, and
    the flow-run processes it starts, which inherit its environment)."""
    return {setting.name: str(value) for setting, value in client_settings(info).items()}


def _no_tls_peer_ca_file() -> Path:
    """A CA file holding one self-signed certificate whose key was thrown away.

    Why: every Prefect API client builds a TLS context from its CA file, even for a plain
    HTTP URL, and certifi's bundle of ~150 certificates takes 20 ms of CPU to load; a backup
    run made about eight clients (each slot release, the result-storage reads at flow start,
    the run's own): measured 0.2 s less per run with this file. Our server speaks plain HTTP
    on 127.0.0.1, so no certificate is ever checked; should TLS appear, this file trusts no
    peer at all.
    """
    path = _prefect_home() / "no-tls-peer-ca.pem"
    if path.exists():
        return path
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bingobackup: trusts no TLS peer")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))  # loading a CA file checks no dates
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    replace_file(path, certificate.public_bytes(serialization.Encoding.PEM))
    return path


def status() -> ServerInfo | None:
    """The server commands would use now, or None when ours is not running."""
    external = os.environ.get("PREFECT_API_URL")
    if external:
        return ServerInfo(url=external.rstrip("/"), pid=None, log_path=None)
    running = _SERVICE.status()
    if running is None:
        return None
    host = running.extra.get("host", LOOPBACK)
    auth = _stored_auth_string() if running.extra.get("auth") else None
    database = running.extra.get("database", LOCAL_DATABASE_LABEL)
    return ServerInfo(running.url, running.pid, running.log_path, host, auth, database)


LOCAL_DATABASE = "local"  # `--database local`: the SQLite file under BINGOBACKUP_HOME
LOCAL_DATABASE_LABEL = "local SQLite"
_DATABASE_SCHEME = "postgresql+asyncpg"
# Prefect's own settings for the server's database, which an operator may have set instead.
_DATABASE_SETTINGS = ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL")


# The server's connections to PostgreSQL. With Prefect's defaults (a pool of 5, and 10 more
# under load; a request waiting at most 30 s for one; a statement at most 10 s) 100 scheduled
# runs starting at one minute failed 43-100 of their runs: requests answered 500 (QueuePool
# limit reached, or asyncpg's statement timeout while the server's loop was busy), which
# Prefect's clients do not retry (docs/benchmarks.md, "Scheduler"). 20 + 30 connections stay
# within PostgreSQL's default max_connections (100), leaving room for the admin's sessions;
# the waits stay below the clients' 60 s request timeout, whose expiry they do retry.
POSTGRES_POOL = {
    "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE": "20",
    "PREFECT_SERVER_DATABASE_SQLALCHEMY_MAX_OVERFLOW": "30",
    "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_TIMEOUT": "55",
    "PREFECT_SERVER_DATABASE_TIMEOUT": "45",
}


def masked_database_url(url: str) -> str:
    """`url` with its password (if any) replaced by ***, for anything shown or logged."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user_info, _, host = parts.netloc.rpartition("@")
    user = user_info.split(":", 1)[0]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def checked_database_url(url: str) -> str:
    """A PostgreSQL URL Prefect's server can use, or LOCAL_DATABASE; refused with one line otherwise."""
    if url == LOCAL_DATABASE:
        return url
    parts = urlsplit(url)
    if parts.scheme != _DATABASE_SCHEME or not (parts.hostname or "host=" in parts.query):
        driver_hint = (
            f" Prefect's server talks to PostgreSQL through asyncpg: write {_DATABASE_SCHEME}://…"
            if parts.scheme in ("postgresql", "postgres", "postgresql+psycopg2")
            else ""
        )
        raise PrefectServerError(
            f"--database '{masked_database_url(url)}' is not a PostgreSQL URL like "
            f"{_DATABASE_SCHEME}://USER:PASSWORD@HOST:5432/DATABASE (or '{LOCAL_DATABASE}' for the SQLite "
            f"file under BINGOBACKUP_HOME).{driver_hint}"
        )
    return url


def database_url_file() -> Path:
    return bingobackup_home() / "prefect-database-url"


def remember_database(url: str) -> None:
    """Make `url` (checked) the database of every later start of this home's server."""
    if checked_database_url(url) == LOCAL_DATABASE:
        database_url_file().unlink(missing_ok=True)
    else:
        replace_file(database_url_file(), url.encode(), mode=0o600)


def database_label(url: str | None) -> str:
    return LOCAL_DATABASE_LABEL if url is None else masked_database_url(url)


def configured_database() -> str | None:
    """The database URL our server is to use (remembered, else Prefect's own setting in the
    environment), or None for the local SQLite file."""
    try:
        return database_url_file().read_text().strip()
    except FileNotFoundError:
        pass
    return next((os.environ[name] for name in _DATABASE_SETTINGS if os.environ.get(name)), None)


def auth_string_file() -> Path:
    return bingobackup_home() / "prefect-api-auth-string"


def _stored_auth_string() -> str:
    try:
        return auth_string_file().read_text().strip()
    except FileNotFoundError:
        raise PrefectServerError(
            f"The local Prefect server requires an auth string, but {auth_string_file()} is gone. "
            "Restart it: `bingobackup server stop`, then `bingobackup server start --auth`."
        ) from None


def _auth_string_to_use() -> str:
    """PREFECT_SERVER_API_AUTH_STRING when set, else the one stored before, else a new random one;
    stored (0600) for this home's later commands."""
    given = os.environ.get("PREFECT_SERVER_API_AUTH_STRING")
    path = auth_string_file()
    if given:
        replace_file(path, given.encode(), mode=0o600)
        return given
    if path.exists():
        return _stored_auth_string()
    generated = secrets.token_urlsafe(32)
    replace_file(path, generated.encode(), mode=0o600)
    return generated


def ensure_server(port: int | None = None, host: str = LOOPBACK, auth: bool | None = None) -> ServerInfo:
    """Return a healthy server, starting ours in the background when needed: on `host`, with a
    basic-auth string when `auth` (by default: when `host` is not a loopback address; a
    non-loopback host without one is refused). A running server is reused as it is."""
    auth = not is_loopback(host) if auth is None else auth
    if not auth and not is_loopback(host):
        raise PrefectServerError(
            f"Refusing to serve the Prefect API on {host} without an auth string: Prefect OSS has no "
            "users, so anybody who reaches it could run, change or delete every job. Drop --no-auth "
            "(a random auth string is generated and kept under BINGOBACKUP_HOME), or keep the "
            f"default host {LOOPBACK}."
        )
    current = status()
    if current and current.pid is None:
        if not http_ok(f"{current.url}/health", timeout=5.0):
            raise PrefectServerError(
                f"PREFECT_API_URL={current.url} does not answer. Start that server, or unset "
                "PREFECT_API_URL to let bingobackup start a local one."
            )
        return current
    if current:
        return current
    prefect_home = _prefect_home()
    auth_string = _auth_string_to_use() if auth else None
    database = configured_database()
    env = {
        **os.environ,
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # Either bound to 127.0.0.1 for this machine's user, or every API request must carry
        # the auth string in a header, which a page of another site cannot add.
        "PREFECT_SERVER_CSRF_PROTECTION_ENABLED": "false",
        # Task-run states written in batches, every second, not each in its own transaction:
        # measured 30 → 8 ms of server CPU per task run, and a backup run makes eight of them
        # while it needs both cores. The UI shows a task run's state up to 1 s later.
        "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
        "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    }
    env.pop("PREFECT_API_URL", None)
    env.pop("PREFECT_SERVER_API_AUTH_STRING", None)
    if auth_string is not None:
        env["PREFECT_SERVER_API_AUTH_STRING"] = auth_string
    for name in _DATABASE_SETTINGS:
        env.pop(name, None)
    if database is not None:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database
        for name, value in POSTGRES_POOL.items():
            env.setdefault(name, value)  # an operator's own setting wins
    # The address clients of this machine use: a wildcard address serves loopback too.
    client_host = LOOPBACK if host in ("0.0.0.0", "::") else host
    client_host = f"[{client_host}]" if ":" in client_host else client_host
    extra = {
        "host": host,
        "database": database_label(database),
        **({"auth": "basic"} if auth_string is not None else {}),
    }
    port = port or free_port(DEFAULT_PORT)
    for _ in range(_START_TRIES):
        url = f"http://{client_host}:{port}/api"
        env["PREFECT_UI_URL"] = url.removesuffix("/api")  # for the links in notifications
        # The UI's pages call this API: Prefect would otherwise point them at port 4200, which
        # is another server (or none) whenever ours took another port.
        env["PREFECT_UI_API_URL"] = url
        # Prefect's `server start`, with SQLite write transactions made IMMEDIATE (see prefect_serve).
        command = [sys.executable, "-m", "bingobackup.cli.prefect_serve", host, str(port)]
        try:
            running = _SERVICE.ensure(
                command,
                url,
                env=env,
                extra=extra,
                is_ours=functools.partial(_serves_home, url, prefect_home, auth_string),
            )
        except PortTakenError:
            port = free_port(0)  # taken since we found it free: any other port will do
            continue
        except ServiceError as exc:
            raise PrefectServerError(f"Cannot start the local Prefect server: {exc}") from None
        return ServerInfo(
            running.url, running.pid, running.log_path, host, auth_string, database_label(database)
        )
    raise PrefectServerError(
        f"Cannot start the local Prefect server: {_START_TRIES} ports in a row were taken by other "
        "servers while it started. Run the command again, or point PREFECT_API_URL at a server"
    )


def _prefect_home() -> Path:
    """Our local server's PREFECT_HOME (its database), beside which its clients' CA file lives."""
    home = bingobackup_home() / "prefect"
    home.mkdir(exist_ok=True)
    return home


def _serves_home(url: str, prefect_home: Path, auth_string: str | None) -> bool:
    """True when the Prefect server at `url` keeps its data in `prefect_home` (it is ours)."""
    request = urllib.request.Request(f"{url}/admin/settings")
    if auth_string is not None:
        token = base64.b64encode(auth_string.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return bool(json.loads(response.read()).get("home") == str(prefect_home))
    except (OSError, ValueError):
        return False


def stop_server() -> bool:
    """Stop our local server; False when none was running."""
    return _SERVICE.stop()
