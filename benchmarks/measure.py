"""One measurement = one fresh process, so peak RSS and CPU time belong to that step alone.

Kept free of heavy imports: `benchmarks.one exec` loads only this module before it starts
the measured program.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

RESULT_MARK = "BENCH-RESULT "
REPO_ROOT = Path(__file__).resolve().parent.parent


class CommandFailed(RuntimeError):
    pass


def retire(tree: Path) -> None:
    """Takes `tree` out of the way as deleting it would, but frees its inodes only at the end.

    Every file is truncated to nothing (its page cache and blocks are freed, as a delete
    frees them) and the tree moved under `retired/` beside it; the benchmark's work directory
    is deleted as a whole when the run ends. Deleting instead costs the next step dearly on a
    filesystem without a journal (this machine's root ext4): the inode allocator skips an
    inode deleted less than 60 s ago (360 s while its inode-table block is unwritten) and
    rescans every such inode of the group at each create, so after one pool of ~650 files and
    directories was deleted, each new chunk file took 0.4-1 ms of CPU instead of 18 µs, a
    tenth of a first backup's CPU time. Journalled filesystems do not do this; real backup
    hosts do not delete a pool seconds before each backup.
    """
    if not tree.exists():
        return
    attic = tree.parent / "retired"
    attic.mkdir(exist_ok=True)
    target = attic / f"{len(os.listdir(attic))}-{tree.name}"
    tree.rename(target)
    for directory, _, names in os.walk(target):
        for name in names:
            path = os.path.join(directory, name)
            if not os.path.islink(path):  # a link's target is not this tree's to empty
                os.truncate(path, 0)


def peak_rss_bytes() -> int:
    """This process's peak resident set size.

    VmHWM belongs to the current address space, so it starts afresh at exec; ru_maxrss does
    not (Linux carries the forking parent's peak over exec), which would charge each step
    with whatever the orchestrating process once held.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def spawn_measured(
    command: Sequence[str], cwd: str | None = None, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Run `command` to the end and return its stdout, wall and CPU seconds and peak RSS.

    Called inside a small fresh interpreter (`benchmarks.one exec`), so the peak RSS that
    Linux carries over exec is that interpreter's few MiB, not the orchestrator's. `os.wait4`
    gives the rusage of exactly this child. Output goes to files, not pipes, so a chatty
    child never blocks on a full pipe while we sit in wait4.
    """
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(list(command), stdout=stdout, stderr=stderr, cwd=cwd, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        wall = time.perf_counter() - started
        stdout.seek(0)
        stderr.seek(0)
        out, err = stdout.read(), stderr.read()
    if process.returncode != 0:
        tail = "\n".join((err or out).strip().splitlines()[-15:])
        raise CommandFailed(f"{' '.join(command[:3])} … exited with {process.returncode}:\n{tail}")
    return {
        "stdout": out,
        "wall_seconds": wall,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_bytes": usage.ru_maxrss * 1024,
    }


def run_step(
    operation: str, arguments: dict[str, Any], env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Run `python -m benchmarks.one OPERATION` in a fresh interpreter; returns what it measured.

    Dirty pages left by earlier work (building the image, the probe, the previous step) are
    written out first: otherwise the kernel writes them back during this step, and its fsyncs
    wait behind them (a first backup measured 2.2 s instead of 1.6 s after the probe)."""
    os.sync()
    process = subprocess.run(
        [sys.executable, "-m", "benchmarks.one", operation, json.dumps(arguments)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=REPO_ROOT,
    )
    for line in reversed(process.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return result
    tail = "\n".join((process.stderr or process.stdout).strip().splitlines()[-20:])
    raise CommandFailed(f"benchmark step {operation!r} failed (exit {process.returncode}):\n{tail}")


def run_command(
    command: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> dict[str, Any]:
    """An external program (restic, borg) measured like our own steps."""
    return run_step("exec", {"command": list(command), "cwd": str(cwd) if cwd else None}, env)


def directory_bytes(path: Path) -> int:
    """Bytes of every file under `path` (what a pool or repository occupies, before filesystem blocks)."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file() and not p.is_symlink())
