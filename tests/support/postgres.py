"""A PostgreSQL server of the test's own, as a team's Prefect server would use: a fresh cluster
(initdb) in a temporary folder, listening on 127.0.0.1 with a password, stopped and removed
afterwards.

It runs Debian's `postgresql` package, which `make test` installs when it is missing. Not the
pip package pgserver: its binaries lack the pg_trgm extension that Prefect's schema creates.
PostgreSQL refuses to run as root, so under root (CI) the cluster belongs to the package's
`postgres` user and its commands run as that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bingobackup.cli.background import free_port

USER = "bingobackup"
DATABASE = "prefect"


def _bin_dir() -> Path:
    """The newest installed PostgreSQL's programs (Debian keeps them per major version)."""
    installed = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    initdb = installed[-1] if installed else shutil.which("initdb")
    if initdb is None:
        raise AssertionError(
            "PostgreSQL is not installed: `make test` installs it (apt-get install postgresql); "
            "install it by hand where apt is not available."
        )
    return Path(initdb).parent


@contextlib.contextmanager
def running_postgres(password: str) -> Iterator[str]:
    """A running PostgreSQL; yields the Prefect database URL (postgresql+asyncpg://…)."""
    bin_dir = _bin_dir()
    folder = Path(tempfile.mkdtemp(prefix="bb-postgres-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")  # created by the package
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log = folder / "data", folder / "postgres.log"
    password_file = folder / "password"
    password_file.write_text(password + "\n")
    if as_user:
        os.chown(password_file, pwd.getpwnam("postgres").pw_uid, -1)

    def run(*command: str, **kwargs: object) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, timeout=60, **kwargs)  # type: ignore[call-overload]

    port = free_port(0)
    try:
        run(
            str(bin_dir / "initdb"),
            f"--pgdata={data}",
            f"--username={USER}",
            f"--pwfile={password_file}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-sync",
        )
        password_file.unlink()
        # fsync off: a test's database need not survive a power cut, and it halves Prefect's migration time.
        options = f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c full_page_writes=off"
        run(str(bin_dir / "pg_ctl"), f"--pgdata={data}", f"--log={log}", "-w", "-o", options, "start")
        try:
            env = {**os.environ, "PGPASSWORD": password}
            run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, DATABASE, env=env)
            yield f"postgresql+asyncpg://{USER}:{password}@127.0.0.1:{port}/{DATABASE}"
        finally:
            run(str(bin_dir / "pg_ctl"), f"--pgdata={data}", "-m", "immediate", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
