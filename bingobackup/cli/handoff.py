"""`bingobackup backup run` handed to a worker's warm fork server on this machine.

Before its flow run goes Running, a `backup run` process spends about 1.3 CPU-seconds
importing Prefect, the flows, pyarrow and DuckDB (docs/benchmarks.md, "End to end"). A
backup host whose worker runs (`bingobackup worker start`) has a fork server that imported all
of it once (docs/agent.md). When one of this user's fork servers is ready on this machine,
with this interpreter and this code, the command is forked from it, as a docker or
kopia-server client hands its work to the daemon: the child takes this process's
stdin/stdout/stderr, working directory, environment and arguments and runs the very same
command (`bingobackup.cli.main.main`), so the progress bar, the summary table, the messages
and the exit status are the ones it would have had here. This process passes Ctrl-C (SIGINT),
SIGTERM and SIGHUP on to it and exits as it did (`forkclient.hand_over`). Without a usable
fork server, or with BINGOBACKUP_HANDOFF=0, the command runs in this process as before.

It runs before the command's imports: nothing here imports Prefect or the flows.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

HANDOFF_ENV = "BINGOBACKUP_HANDOFF"  # "0": always run the command in this process
ADVERT_DIRECTORY = "fork-servers"  # under BINGOBACKUP_HOME: one `<host>.json` per fork server
# The commands handed over (argv after the global options). Only `backup run`: it is the one
# whose start cost matters next to its work; the others are quick or start flows elsewhere.
HANDED_OVER = (("backup", "run"),)
_GLOBAL_OPTIONS_WITH_VALUE = ("--user",)


def _code_root() -> str:
    """The directory the bingobackup package was imported from: a server running other code
    (another checkout, an older install) must not run this command."""
    return str(Path(__file__).resolve().parents[2])


def advertisement(socket_path: Path) -> dict[str, object]:
    """What a ready fork server writes under BINGOBACKUP_HOME (`forkserver.advertise`)."""
    return {"socket": str(socket_path), "pid": os.getpid(), "python": sys.executable, "code": _code_root()}


def advert_path(home: Path, host: str) -> Path:
    return home / ADVERT_DIRECTORY / f"{host}.json"


def command_words(argv: list[str]) -> tuple[str, ...]:
    """The command's words after the global options (`--user NAME`, `--user=NAME`)."""
    index = 0
    while index < len(argv) and argv[index].startswith("--"):
        name = argv[index].partition("=")[0]
        if name not in _GLOBAL_OPTIONS_WITH_VALUE:
            break
        index += 1 if "=" in argv[index] else 2
    return tuple(argv[index : index + 2])


def handed_over(argv: list[str]) -> bool:
    """Whether `bingobackup ARGV` is a command a fork server may run (never `--help`)."""
    return command_words(argv) in HANDED_OVER and "--help" not in argv


def usable_servers(home: Path) -> list[str]:
    """Sockets of ready fork servers of this user on this machine that run this interpreter
    and this code, most recently started first."""
    adverts = []
    for path in (home / ADVERT_DIRECTORY).glob("*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            advert = json.loads(path.read_text())
            os.kill(int(advert["pid"]), 0)  # gone (killed without removing its file): OSError
            if advert["python"] == sys.executable and advert["code"] == _code_root():
                adverts.append((path.stat().st_mtime, str(advert["socket"])))
    return [socket for _, socket in sorted(adverts, reverse=True)]


def hand_over_command(argv: list[str]) -> None:
    """Run `bingobackup ARGV` in a usable fork server's child and exit as it did; return when
    it is not to be handed over or no server could start it (then it runs in this process)."""
    if os.environ.get(HANDOFF_ENV) == "0" or not handed_over(argv):
        return
    from bingobackup.cli.environment import bingobackup_home
    from bingobackup.cli.forkclient import hand_over, request_payload

    for socket in usable_servers(bingobackup_home()):
        hand_over(socket, request_payload(argv, kind="cli"))  # returns only if not started
