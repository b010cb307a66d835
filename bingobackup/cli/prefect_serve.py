"""`python -m bingobackup.cli.prefect_serve HOST PORT`: Prefect's own server, with SQLite
write transactions that take the write lock when they begin.

Why: the local server keeps its database in SQLite. Prefect opens most write transactions
DEFERRED (read first, then write). When another connection writes in between — the event
persister and the task-run recorder do so all the time during a flow run — SQLite cannot
upgrade the read lock and fails at once with "database is locked" (its busy timeout does not
apply to that case). The API turns it into a 503 and the client backs off for 2 s: measured
on this machine, one tagged task in three waited 2 s for its concurrency slot that way.
`BEGIN IMMEDIATE` takes the write lock up front, so a transaction that meets another writer
waits on SQLite's busy timeout (milliseconds here) instead of failing. Prefect itself uses
IMMEDIATE for the transactions it knows are contended (`with_for_update`); we use it for all
of them. Team servers on PostgreSQL are not affected and not touched.

On SQLite, Prefect also caps the requests it serves at once (`RequestLimitMiddleware`, 100)
and counts every WebSocket against that cap for as long as it stays open. Every flow run
keeps two open (its events stream in, and its watch for being suspended or cancelled), so
about 50 runs at once held all 100 slots, every HTTP request (theirs, the workers', `/health`)
waited for a slot that only their ending would free, and the server stopped answering with
its CPU idle (docs/benchmarks.md, "Scheduler"). We keep the cap for HTTP requests, the
SQLite writers it is meant for, and let WebSockets, the lifespan and the health probes
through; a request that waits longer than `REQUEST_SLOT_WAIT` for a slot is answered 503
with a Retry-After, which Prefect's clients retry, instead of hanging.

It also imports bingobackup's own notification block (deployments/mail.py, e-mail through
SMTP): the server's actions service sends notifications, and it can load a block only when
its class was imported in this process.

The server also runs at a lower CPU priority than backups (`NICENESS`): it shares the backup
host's cores with the data path, and its work during a run (recording task-run states and
events, its services' loops) can wait; a backup's compressing and encrypting cannot.
"""

from __future__ import annotations

import os
import sys
from contextlib import AbstractAsyncContextManager
from typing import Any

# How long an HTTP request may wait for one of the SQLite server's request slots before it
# is answered 503 (Prefect's clients retry a 503 after its Retry-After; their own request
# timeout is 60 s). The server is busy, not broken: waiting in the client frees the slot's
# queue for the requests already in it.
REQUEST_SLOT_WAIT = 20.0
RETRY_AFTER_SECONDS = 2
# Paths that never touch the database: they answer whatever the load.
_UNLIMITED_PATHS = frozenset({"/api/health", "/api/ready", "/health", "/ready"})

# Below the backups that share the cores (0): when both want a core, the scheduler gives the
# server about a tenth of it; when the cores are idle (a run waiting on the cloud), the
# server runs as fast as ever. Measured on the benchmark's 2 GiB job, alternated rounds: the
# flow's runs minus the engine's, median 0.27-0.35 s at 0, -0.09 to 0.06 s at 10 (the server's
# ~0.17 CPU-s per run had landed in the two-core data phase, its own and the next job's).
NICENESS = 10


def _immediate_sqlite_transactions() -> None:
    from prefect.server.database.configurations import AioSqliteConfiguration

    deferred_or_immediate = AioSqliteConfiguration.begin_transaction

    def begin_transaction(
        self: AioSqliteConfiguration, session: Any, with_for_update: bool = False
    ) -> AbstractAsyncContextManager[Any]:
        return deferred_or_immediate(self, session, with_for_update=True)

    AioSqliteConfiguration.begin_transaction = begin_transaction  # type: ignore[assignment,method-assign]


def _websockets_outside_sqlite_request_limit() -> None:
    """Prefect's cap on concurrent requests (SQLite only) for short HTTP requests alone (see
    the module's docstring)."""
    import anyio
    from prefect.server.api.server import RequestLimitMiddleware
    from starlette.responses import JSONResponse

    async def limited(self: RequestLimitMiddleware, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in _UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        acquired = False
        with anyio.move_on_after(REQUEST_SLOT_WAIT):
            await self._limiter.acquire()
            acquired = True
        if not acquired:
            busy = JSONResponse(
                {"detail": "The Prefect server is busy (all of its SQLite request slots are taken); retry."},
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
            await busy(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._limiter.release()

    RequestLimitMiddleware.__call__ = limited  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bingobackup.cli.prefect_serve HOST PORT", file=sys.stderr)
        return 2
    host, port = argv
    os.nice(NICENESS)  # before any thread starts: threads inherit it
    _immediate_sqlite_transactions()
    _websockets_outside_sqlite_request_limit()
    from prefect.cli import app

    import deployments.mail  # noqa: F401  (registers the e-mail block type for the actions service)

    sys.argv = ["prefect", "server", "start", "--host", host, "--port", port]
    app()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
