"""The `bingobackup` command's entry point. It imports the command groups (`cli/app.py`) only
after deciding where the command runs: `backup run` may be handed to a worker's warm fork
server first (`cli/handoff.py`), and then this process needs none of them."""

from __future__ import annotations

import gc as python_gc
import os
import sys
from typing import Any


def __getattr__(name: str) -> Any:
    """`app`, the Typer application (tests and `python -m` users import it from here)."""
    if name == "app":
        from bingobackup.cli.app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _is_operator_error(exc: BaseException) -> bool:
    from pydantic import ValidationError

    from bingobackup.errors import BingoBackupError

    return isinstance(exc, BingoBackupError | ValidationError | FileNotFoundError | PermissionError)


def main() -> None:
    # INFO lines belong in the run's log in the Prefect UI; the terminal shows progress and tables.
    from bingobackup.cli.environment import LOGGING_ENVIRONMENT
    from bingobackup.cli.handoff import hand_over_command

    for name, value in LOGGING_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    # `backup run` on a host whose worker runs: forked from the worker's warm fork server,
    # which runs `run_here` (cli/handoff.py).
    hand_over_command(sys.argv[1:])
    run_here()


def run_here() -> None:
    """The command in sys.argv, in this process; errors an operator can fix are one line."""
    from bingobackup.cli.app import app
    from bingobackup.cli.common import err_console

    try:
        app()
    except Exception as exc:
        if os.environ.get("BINGOBACKUP_DEBUG") or not _is_operator_error(exc):
            raise
        from rich.markup import escape

        # soft_wrap: the message stays whole on one line (the terminal wraps it), so it can be
        # read, copied and searched for in a log without line breaks rich would insert.
        err_console.print(f"[bold red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    finally:
        # The interpreter's exit ends with a full garbage collection over every object left,
        # Prefect's and pydantic's million among them: 0.3-0.4 s after the command's last line
        # (docs/benchmarks.md, "End to end"). Frozen objects are left out of it; the process
        # ends anyway, and atexit handlers (Prefect sending its last events and logs) still run.
        python_gc.freeze()


if __name__ == "__main__":
    main()
