"""What every command group shares: the console, the acting user, the Prefect connection."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from bingobackup.cli.prefect_server import ServerInfo
    from bingobackup.resources.models import User
    from bingobackup.resources.store import RegistryStore

# Piped or logged output (CI, `tee`) gets room for the tables instead of rich's 80 columns.
_WIDTH = None if sys.stdout.isatty() else 140
console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)


@contextmanager
def collector_paused_for_imports() -> Iterator[None]:
    """Imports without the garbage collector, their objects then left out of its later passes.

    Prefect, pydantic's schemas, the flows and pyarrow make about two million objects that live
    until exit; while they are imported the collector walks them all again and again (3 full
    passes, up to 1 s of a `backup run` under load: docs/benchmarks.md, "End to end"). Here it
    waits until the block's end, which freezes what exists then (`gc.freeze`: never walked or
    freed again; what little the imports left as garbage stays too) and lets it run again for
    the objects made later.
    """
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def acting_user_name() -> str | None:
    """Who runs the command: `--user` on the command line, else BINGOBACKUP_USER."""
    return os.environ.get("BINGOBACKUP_USER") or None


_active_server: ContextVar[ServerInfo | None] = ContextVar("bingobackup_prefect_api", default=None)


@contextmanager
def prefect_api() -> Iterator[ServerInfo]:
    """Point Prefect at our local server (started on demand) or at PREFECT_API_URL. Inside
    another `prefect_api()`, the same server and settings (building Prefect's settings again
    costs ≈ 20 ms of CPU)."""
    active = _active_server.get()
    if active is not None:
        yield active
        return
    from bingobackup.cli.prefect_server import client_settings, ensure_server

    info = ensure_server()
    from prefect.settings import temporary_settings

    _console_without_tracebacks()
    token = _active_server.set(info)
    try:
        with temporary_settings(updates=client_settings(info)):
            yield info
    finally:
        _active_server.reset(token)


class _WithoutTraceback(logging.Formatter):
    """A console formatter's line without the record's traceback.

    Prefect logs a failed task or flow run with its traceback; the command reports the failure
    itself, in one line. The record stays whole for the run's log in the Prefect API, whose
    handler formats it too (the copy keeps its cached traceback text out of this line).
    """

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            bare = {"exc_info": None, "exc_text": None, "stack_info": None}
            record = logging.makeLogRecord({**record.__dict__, **bare})
        return self.inner.format(record)


def _console_without_tracebacks() -> None:
    """Prefect's console log of the flows this command runs, without tracebacks unless
    BINGOBACKUP_DEBUG is set (as for the command's own errors, `bingobackup.cli.main`)."""
    if os.environ.get("BINGOBACKUP_DEBUG"):
        return
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    ensure_logging_setup()  # else Prefect sets its handlers up when the flow is imported
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not isinstance(
            handler.formatter, _WithoutTraceback
        ):
            handler.setFormatter(_WithoutTraceback(handler.formatter))


@contextmanager
def byte_bar(
    description: str, *, quiet: bool = False, on: Console = console
) -> Iterator[Callable[[int, int], None]]:
    """A rich bar of bytes done (size, rate, time); yields `listener(done, total)` to feed it."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeElapsedColumn, TransferSpeedColumn

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=on,
        disable=quiet,
    )
    bar = progress.add_task(description, total=None)

    def listener(done: int, total: int) -> None:
        progress.update(bar, completed=done, total=total)

    with progress:
        yield listener


@contextmanager
def byte_progress(description: str, *, quiet: bool = False) -> Iterator[None]:
    """A rich bar fed by the engine's progress listeners while a flow runs in this process."""
    from bingobackup.jobs.progress import PROGRESS_LISTENERS

    with byte_bar(description, quiet=quiet) as listener:
        PROGRESS_LISTENERS.append(listener)
        try:
            yield
        finally:
            PROGRESS_LISTENERS.remove(listener)


@contextmanager
def registry(*, read_only: bool = False) -> Iterator[tuple[RegistryStore, User]]:
    """The registry of clouds, backup hosts and users (Prefect Blocks) and the acting user.
    `read_only`: read at once, one round trip instead of one per lookup (for checks)."""
    with prefect_api():
        from bingobackup.resources.users import resolve_user
        from tasks.blocks import PrefectRegistryStore

        store: RegistryStore = PrefectRegistryStore().snapshot() if read_only else PrefectRegistryStore()
        yield store, resolve_user(store, acting_user_name())


def parse_pairs(pairs: list[str], what: str) -> dict[str, str]:
    """`KEY=VALUE` command-line pairs; a malformed one is refused naming it."""
    from bingobackup.errors import BingoBackupError

    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BingoBackupError(f"{what} '{pair}' is not KEY=VALUE")
        parsed[key] = value
    return parsed


def authorize_command(kind: str, label: str) -> Callable[..., None]:
    """The `authorize` command of a resource group (cloud, host, pool): one shape for all three."""
    import typer

    def authorize(
        names: list[str] = typer.Argument(..., help=f"{label}(s) to authorize"),
        group: list[str] = typer.Option(..., "--group", help="User group (repeatable)"),
        revoke: bool = typer.Option(False, help="Withdraw the groups instead"),
    ) -> None:
        from bingobackup.resources.hosts import authorize as grant
        from bingobackup.resources.hosts import deauthorize

        with registry() as (store, user):
            changed = (deauthorize if revoke else grant)(store, user, kind, names, group)  # type: ignore[arg-type]
        for resource in changed:
            key = getattr(resource, "instance_id", None) or getattr(resource, "name", "")
            console.print(f"{label} [bold]{key}[/]: groups {', '.join(resource.groups) or 'none'}")

    authorize.__doc__ = f"Authorize user groups to use one or more {label.lower()}s (admin; single or batch)."
    return authorize
