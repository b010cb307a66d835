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


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bingobackup.cli.prefect_serve HOST PORT", file=sys.stderr)
        return 2
    host, port = argv
    os.nice(NICENESS)  # before any thread starts: threads inherit it
    _immediate_sqlite_transactions()
    from prefect.cli import app

    import deployments.mail  # noqa: F401  (registers the e-mail block type for the actions service)

    sys.argv = ["prefect", "server", "start", "--host", host, "--port", port]
    app()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
