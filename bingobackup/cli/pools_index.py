"""A local index of pool names → locations, so commands that need no Prefect API
(`export-disk`, `catalog query`, `sets list`) can find pools without starting a server.

It is a cache of the registry (written whenever this machine creates or lists pools); a
path given on the command line always works too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bingobackup.cli.background import bingobackup_home
from bingobackup.errors import BingoBackupError


def _index_file() -> Path:
    return bingobackup_home() / "pools.json"


def remember(name: str, location: str) -> None:
    index = known_pools()
    index[name] = location
    tmp = _index_file().with_suffix(".tmp")
    tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
    os.replace(tmp, _index_file())


def known_pools() -> dict[str, str]:
    try:
        return dict(json.loads(_index_file().read_text()))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def pool_location(name_or_path: str) -> tuple[str, str]:
    """(pool name, directory) for a registered pool name or a pool directory."""
    path = Path(name_or_path)
    if (path / "config.json").is_file():
        return path.resolve().name, str(path.resolve())
    index = known_pools()
    if name_or_path in index:
        return name_or_path, index[name_or_path]
    known = ", ".join(sorted(index)) or "none yet"
    raise BingoBackupError(
        f"No pool named or at '{name_or_path}' (pools known on this machine: {known}). "
        "Give a pool directory, or run `bingobackup pool list` to refresh the list."
    )
