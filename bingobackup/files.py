"""Small files replaced whole: a reader sees the old content or the new, never a mix."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path


def replace_file(target: Path, data: bytes) -> None:
    """Write `data` to a temp file beside `target`, fsync it, then rename it over `target`.

    The temp name is this process's and thread's own, so commands (or threads) replacing the
    same file at once each rename a whole file of their own; the last rename wins.
    """
    temp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
