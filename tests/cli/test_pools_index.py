"""The local pool index and the small files the CLI replaces whole: commands writing at the
same time each leave a whole file, and none drops another's pool."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from bingobackup.cli import pools_index
from bingobackup.files import replace_file


def test_pools_remembered_at_once_are_all_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path))
    start = threading.Barrier(8)

    def remember(index: int) -> None:
        start.wait()
        for round_ in range(10):
            pools_index.remember(f"pool-{index}-{round_}", str(tmp_path / f"p{index}-{round_}"), "dedup")

    threads = [threading.Thread(target=remember, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    known = pools_index.known_pools()
    assert len(known) == 80
    assert known["pool-3-7"] == str(tmp_path / "p3-7")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []  # no temp file left


def test_a_replaced_file_is_old_or_new_never_a_mix_and_a_failed_write_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "state.json"
    replace_file(target, json.dumps({"v": 1}).encode())
    assert json.loads(target.read_text()) == {"v": 1}

    import bingobackup.files as files

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        replace_file(target, json.dumps({"v": 2}).encode())
    assert json.loads(target.read_text()) == {"v": 1}  # the old content, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
