"""The power-loss model itself (power_loss.py): a child that writes, renames and fsyncs under
a journalled root, killed, then `lose_page_cache`: only what was made durable is left."""

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
