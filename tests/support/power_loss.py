"""Power loss after a kill: what the page cache held is undone, as a machine losing power
would lose it (the journal of powerloss/sitecustomize.py, loaded into the killed child).

The model: a file's contents are durable once an fsync of it returned; a directory entry
(a file created, renamed, renamed over another or unlinked, a directory made) once an fsync
of its directory returned. At the loss, entries not yet durable are undone (a replaced or
unlinked file gets its old bytes back, a new file goes, a new directory goes with all it
holds) and files whose contents were never fsynced are left empty. Not modelled: writes
after a file's fsync (the pool never writes a file again); the simulator's and the Prefect
server's state do not lose power.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

SHIM = Path(__file__).resolve().parent / "powerloss"
ROOT_ENV = "BINGOBACKUP_POWERLOSS_ROOT"
JOURNAL_ENV = "BINGOBACKUP_POWERLOSS_JOURNAL"
NEW_DIRECTORY = "<new directory>"


def journalled_env(env: dict[str, str], root: Path, journal: Path) -> dict[str, str]:
    """`env` for a child whose file operations under `root` are journalled to `journal`."""
    path = os.pathsep.join(p for p in (str(SHIM), env.get("PYTHONPATH", "")) if p)
    return {**env, "PYTHONPATH": path, ROOT_ENV: str(root), JOURNAL_ENV: str(journal)}


def lose_page_cache(journal: Path) -> tuple[int, int]:
    """Undoes what was not durable at the kill; (entries undone, files emptied)."""
    # path -> what it was before its first change not yet durable: the shadow of the file it
    # held, None (nothing: a new file), or NEW_DIRECTORY (nothing: a directory made since).
    pending: dict[str, str | None] = {}
    dirty: set[str] = set()
    lines = journal.read_text().splitlines() if journal.exists() else []
    for line in lines:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # the line being written when the process died
        kind, path = event[0], event[1]
        if kind == "write":
            dirty.add(path)
        elif kind == "fsync":
            dirty.discard(path)
        elif kind == "create":
            pending.setdefault(path, None)
        elif kind == "mkdir":
            pending.setdefault(path, NEW_DIRECTORY)
        elif kind == "unlink":
            pending.setdefault(path, event[2])  # its contents, if unsynced, stay dirty
        elif kind == "rename":
            source, target, shadow = event[1], event[2], event[3]
            if source in dirty:
                dirty.discard(source)
                dirty.add(target)
            pending.pop(source, None)
            pending[target] = pending.get(target, shadow)  # a replaced file's first shadow
        elif kind == "dirsync":
            for entry in [p for p in pending if os.path.dirname(p) == path]:
                del pending[entry]
    # New directories go first (with what was written into them), then new files; then the
    # files replaced or unlinked come back.
    for target in sorted((p for p, s in pending.items() if s == NEW_DIRECTORY), key=len):
        shutil.rmtree(target, ignore_errors=True)
    for target, shadow in pending.items():
        if shadow is None:
            Path(target).unlink(missing_ok=True)
    for target, shadow in pending.items():
        if shadow not in (None, NEW_DIRECTORY) and os.path.isdir(os.path.dirname(target)):
            shutil.copyfile(shadow, target)
            dirty.discard(target)
    emptied = 0
    for path in dirty:
        if os.path.isfile(path):
            os.truncate(path, 0)
            emptied += 1
    return len(pending), emptied
