"""What every `bingobackup` process sets up before anything else: where its state lives and
how Prefect logs. Standard library only: the command's entry point reads it before deciding
where the command runs (`cli/handoff.py`), and a `backup run` handed to a worker's fork
server imports nothing more (measured: importing these from `prefect_server` and
`background` took 0.03 s of the handed-over command's 0.05 s)."""

from __future__ import annotations

import os
from pathlib import Path


def bingobackup_home() -> Path:
    home = Path(os.environ.get("BINGOBACKUP_HOME", "~/.bingobackup")).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


# How our processes log (README "What a run's log shows"): `main` sets these for every command,
# before Prefect is imported, and the processes a command starts inherit them: a worker and
# the flow-run processes it starts. An operator's own setting of one wins.
LOGGING_ENVIRONMENT = {
    # The engine's loggers (`bingobackup.*`, INFO) join the log of the run they work for: the
    # Logs tab of a run started by `backup run`, `restore`, `job start` or a schedule.
    "PREFECT_LOGGING_EXTRA_LOGGERS": "bingobackup",
    # Runs log at INFO to the API; a command's console shows only warnings and errors (its
    # progress bar and tables tell the rest), as does a worker's journal.
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
    # An engine line outside any run (a `pool scan` warning) has no run log to join: it goes
    # to the console alone, without Prefect warning about it.
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}
