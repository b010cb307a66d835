"""Whether a process another one recorded (a pool lock's, a temp file's, a partial restore's
writer) still runs: its pid is only meaningful in the process space it was recorded in."""

from __future__ import annotations

import os
import socket


def process_space() -> str:
    """This host name and PID namespace: two containers sharing a host name (host networking)
    each have their own process ids, so a pid is only checked within its own namespace."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = "no-namespace"
    return f"{socket.gethostname()}/{namespace}"


def pid_gone(pid: int) -> bool:
    """True when no process of this process space has id `pid` (another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
