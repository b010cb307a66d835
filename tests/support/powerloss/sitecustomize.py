"""Loaded into a `bingobackup` child by the power-loss trials (PYTHONPATH): journals every
file operation under $BINGOBACKUP_POWERLOSS_ROOT to $BINGOBACKUP_POWERLOSS_JOURNAL, so that
after the SIGKILL the harness can undo what an operating system would have lost with the page
cache (powerloss.py): file contents written but never fsynced, and directory entries
created, renamed or replaced without a later fsync of their directory.

A file replaced by a rename or unlinked keeps a shadow (`<journal>.shadow-N`: a hard link, or
a copy) so its old bytes can come back; a directory made is journalled, so a loss before its
parent's fsync takes it away with everything in it.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import shutil
import stat
import threading

_ROOT = os.environ.get("BINGOBACKUP_POWERLOSS_ROOT")
_JOURNAL = os.environ.get("BINGOBACKUP_POWERLOSS_JOURNAL")

if _ROOT and _JOURNAL:
    _root = os.path.realpath(_ROOT)
    _lock = threading.Lock()
    _paths: dict[int, str] = {}  # open descriptor -> path, for fsync
    _journal = builtins.open(_JOURNAL, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - open for the whole process
    _shadows = [0]
    _os_open, _os_close, _os_fsync = os.open, os.close, os.fsync
    _os_rename, _os_replace, _open = os.rename, os.replace, builtins.open
    _os_unlink, _os_mkdir = os.unlink, os.mkdir

    def _inside(path: object) -> str | None:
        if isinstance(path, int) or path is None:
            return None
        full = os.path.realpath(os.fspath(path))  # type: ignore[arg-type]
        return full if full == _root or full.startswith(_root + os.sep) else None

    def _log(*event: object) -> None:
        with _lock:
            _journal.write(json.dumps(event) + "\n")

    def _opened(path: str | None, fd: int, writing: bool, existed: bool) -> None:
        if path is None:
            _paths.pop(fd, None)  # a descriptor number reused outside the pool
            return
        _paths[fd] = path
        if writing and not existed:
            _log("create", path)
        if writing:
            _log("write", path)

    def open_(path, flags, mode=0o777, *, dir_fd=None):  # type: ignore[no-untyped-def]
        full = _inside(path) if dir_fd is None else None
        existed = bool(full) and os.path.exists(full)  # type: ignore[arg-type]
        fd = _os_open(path, flags, mode, dir_fd=dir_fd)
        _opened(full, fd, bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)), existed)
        return fd

    def close(fd):  # type: ignore[no-untyped-def]
        _paths.pop(fd, None)
        return _os_close(fd)

    def fsync(fd):  # type: ignore[no-untyped-def]
        if hasattr(fd, "fileno"):
            fd = fd.fileno()
        _os_fsync(fd)
        path = _paths.get(fd)
        if path:
            _log("dirsync" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync", path)

    def _shadow(full: str) -> str:
        """A shadow of the file at `full` as it is now: a hard link when the journal is on the
        same file system (the file's inode outlives its name), else a copy."""
        with _lock:
            _shadows[0] += 1
            shadow = f"{_JOURNAL}.shadow-{_shadows[0]}"
        try:
            os.link(full, shadow)
        except OSError:
            shutil.copyfile(full, shadow)
        return shadow

    def _moved(src: object, dst: object, do):  # type: ignore[no-untyped-def]
        full_src, full_dst = _inside(src), _inside(dst)
        shadow = _shadow(full_dst) if full_dst and os.path.isfile(full_dst) else None
        do(src, dst)
        if full_dst:
            _log("rename", full_src, full_dst, shadow)

    def rename(src, dst, **kw):  # type: ignore[no-untyped-def]
        _moved(src, dst, lambda a, b: _os_rename(a, b, **kw))

    def replace(src, dst, **kw):  # type: ignore[no-untyped-def]
        _moved(src, dst, lambda a, b: _os_replace(a, b, **kw))

    def unlink(path, *, dir_fd=None):  # type: ignore[no-untyped-def]
        full = _inside(path) if dir_fd is None else None
        shadow = _shadow(full) if full and os.path.isfile(full) else None
        _os_unlink(path, dir_fd=dir_fd)
        if full:
            _log("unlink", full, shadow)

    def mkdir(path, mode=0o777, *, dir_fd=None):  # type: ignore[no-untyped-def]
        full = _inside(path) if dir_fd is None else None
        _os_mkdir(path, mode, dir_fd=dir_fd)
        if full:
            _log("mkdir", full)

    def open_file(file, mode="r", *args, **kw):  # type: ignore[no-untyped-def]
        full = _inside(file)
        existed = bool(full) and os.path.exists(full)  # type: ignore[arg-type]
        handle = _open(file, mode, *args, **kw)
        if not isinstance(file, int):
            _opened(full, handle.fileno(), any(c in mode for c in "wax+"), existed)
        return handle

    os.open, os.close, os.fsync = open_, close, fsync
    os.rename, os.replace = rename, replace
    os.unlink = os.remove = unlink
    os.mkdir = mkdir
    builtins.open = io.open = open_file
