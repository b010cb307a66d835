"""The power-loss model itself (power_loss.py): a child that writes, renames, unlinks, makes
directories and fsyncs under a journalled root, killed, then `lose_page_cache`: only what was
made durable is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from support.power_loss import journalled_env, lose_page_cache

CHILD = """
import os, signal
root = os.environ["BINGOBACKUP_POWERLOSS_ROOT"]
def put(name, data, sync_file, sync_dir):
    temp = os.path.join(root, "." + name + ".tmp")
    with open(temp, "wb") as out:
        out.write(data)
        if sync_file:
            out.flush()
            os.fsync(out.fileno())
    os.replace(temp, os.path.join(root, name))
    if sync_dir:
        fd = os.open(root, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
put("unsynced-content", b"new bytes", False, True)
put("durable", b"new bytes", True, True)
# An fsync of the directory makes every earlier entry in it durable: these two come after.
put("replaced-unsynced-dir", b"new bytes", True, False)
put("new-unsynced-dir", b"new bytes", True, False)
os.kill(os.getpid(), signal.SIGKILL)
"""


UNLINK_MKDIR_CHILD = """
import os, signal
root = os.environ["BINGOBACKUP_POWERLOSS_ROOT"]
def sync(path):
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
def durable_file(path):
    with open(path, "wb") as out:
        out.write(b"data in " + path.encode())
        os.fsync(out.fileno())
    sync(os.path.dirname(path))
os.unlink(os.path.join(root, "gone-durably"))
sync(root)
os.mkdir(os.path.join(root, "kept-dir"))
sync(root)
# An fsync of the directory makes every earlier entry in it durable: these come after.
os.unlink(os.path.join(root, "unlinked-unsynced-dir"))
durable_file(os.path.join(root, "kept-dir", "file"))
os.makedirs(os.path.join(root, "lost-dir", "inner"))
durable_file(os.path.join(root, "lost-dir", "inner", "file"))  # in a directory whose own entry is lost
sync(os.path.join(root, "lost-dir"))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_power_loss_brings_back_unsynced_unlinks_and_takes_away_unsynced_directories(
    tmp_path: Path,
) -> None:
    root, journal = tmp_path / "pool", tmp_path / "journal"
    root.mkdir()
    for name in ("gone-durably", "unlinked-unsynced-dir"):
        (root / name).write_bytes(b"old bytes of " + name.encode())
    env = journalled_env(dict(os.environ), root, journal)
    killed = subprocess.run([sys.executable, "-c", UNLINK_MKDIR_CHILD], env=env, check=False)
    assert killed.returncode == -signal.SIGKILL

    undone, emptied = lose_page_cache(journal)

    assert not (root / "gone-durably").exists()
    assert (root / "unlinked-unsynced-dir").read_bytes() == b"old bytes of unlinked-unsynced-dir"
    assert (root / "kept-dir" / "file").is_file()
    assert not (root / "lost-dir").exists()  # its entry in root was never made durable
    assert sorted(p.name for p in root.iterdir()) == ["kept-dir", "unlinked-unsynced-dir"]
    assert (undone, emptied) == (2, 0)


def test_a_power_loss_keeps_only_what_was_fsynced(tmp_path: Path) -> None:
    root, journal = tmp_path / "pool", tmp_path / "journal"
    root.mkdir()
    (root / "replaced-unsynced-dir").write_bytes(b"old bytes")
    env = journalled_env(dict(os.environ), root, journal)
    killed = subprocess.run([sys.executable, "-c", CHILD], env=env, check=False)
    assert killed.returncode == -signal.SIGKILL

    undone, emptied = lose_page_cache(journal)

    assert (root / "durable").read_bytes() == b"new bytes"
    assert (root / "replaced-unsynced-dir").read_bytes() == b"old bytes"
    assert not (root / "new-unsynced-dir").exists()
    assert (root / "unsynced-content").read_bytes() == b""  # renamed durably, contents lost
    assert (undone, emptied) == (2, 1)
