"""What every command group shares: the console, the acting user, the Prefect connection."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from bingobackup.cli.prefect_server import ServerInfo

console = Console()
err_console = Console(stderr=True)


def acting_user() -> str:
    """Who runs the command: `--as` on the command line, else BINGOBACKUP_USER, else admin."""
    return os.environ.get("BINGOBACKUP_USER", "admin")


@contextmanager
def prefect_api() -> Iterator[ServerInfo]:
    """Point Prefect at our local server (started on demand) or at PREFECT_API_URL."""
    from bingobackup.cli.prefect_server import ensure_server

    info = ensure_server()
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: info.url}):
        yield info
