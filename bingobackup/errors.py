"""The root of every error bingobackup raises on purpose.

A `BingoBackupError`'s message is written for the person at the terminal: what is wrong and
what to do next. The CLI prints it without a traceback. It never contains a secret.
"""

from __future__ import annotations


class BingoBackupError(Exception):
    """An error whose message is meant for the operator."""
