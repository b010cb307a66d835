"""A local index of pool names → locations and kinds, so commands that need no Prefect API
(`export-disk`, `catalog query`, `sets list`) can find pools without starting a server.

It is a cache of the registry (written whenever this machine creates or lists pools); a
path given on the command line always works too. A pool whose storage is not a directory
here (object storage: its keys are in the registration, never in this file) is looked up in
the registry.
"""

from __future__ import annotations

import fcntl
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bingobackup.cli.environment import bingobackup_home
from bingobackup.errors import BingoBackupError
from bingobackup.files import replace_file

if TYPE_CHECKING:
    import pyarrow.fs as pafs

    from bingobackup.pools import Pool
    from bingobackup.resources.models import PoolRegistration

# Kinds whose home is a directory holding config.json, manifests and catalog.
DIRECTORY_KINDS = ("dedup", "standard", "lanfree", "tape", "optical")


@dataclass(frozen=True)
class PoolRef:
    """A pool named on the command line: its name, kind (None: a bare directory) and location."""

    name: str
    kind: str | None
    location: str

    @property
    def is_directory(self) -> bool:
        return self.kind in DIRECTORY_KINDS or (self.kind is None and Path(self.location).is_dir())

    def catalog_root(self) -> tuple[str, str, pafs.FileSystem | None]:
        """(pool, root, filesystem) for catalog.Catalog: the directory, or the bucket's catalog."""
        if self.is_directory:
            return self.name, self.location, None
        from bingobackup.resources.pools import pool_catalog_root

        root, filesystem = pool_catalog_root(self.registration())
        return self.name, root, filesystem

    def open(self, passphrase: str | None) -> Pool:
        """The pool, opened by its kind; `passphrase` overrides the registration's."""
        from bingobackup.resources.pools import open_local_pool, open_registered_pool

        if self.is_directory:
            return open_local_pool(self.kind or "dedup", Path(self.location), passphrase, self.name)
        registration = self.registration()
        if passphrase:
            from pydantic import SecretStr

            registration = registration.model_copy(update={"passphrase": SecretStr(passphrase)})
        return open_registered_pool(registration)

    def open_for_reading(self, passphrase: str | None) -> Pool:
        """`open`, saying where the passphrase goes when an encrypted pool was given none."""
        from bingobackup.format.errors import PassphraseRequiredError

        try:
            return self.open(passphrase)
        except PassphraseRequiredError as exc:
            raise BingoBackupError(
                f"{exc} with --passphrase or the environment variable BINGOBACKUP_POOL_PASSPHRASE."
            ) from None

    def registration(self) -> PoolRegistration:
        from bingobackup.cli.common import registry
        from bingobackup.resources.pools import pool_for

        with registry() as (store, user):
            return pool_for(store, user, self.name)


def _index_file() -> Path:
    return bingobackup_home() / "pools.json"


def _entries() -> dict[str, dict[str, str | None]]:
    try:
        raw = dict(json.loads(_index_file().read_text()))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    # Older indexes hold bare locations.
    return {n: v if isinstance(v, dict) else {"location": v, "kind": None} for n, v in raw.items()}


def remember(name: str, location: str, kind: str | None = None) -> None:
    # Read, change, replace under a lock: two commands remembering pools at once (a pool
    # created while `pool list` refreshes the index) must not drop each other's entry.
    lock_path = _index_file().with_name(".pools.json.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        index = _entries()
        index[name] = {"location": location, "kind": kind}
        replace_file(_index_file(), json.dumps(index, indent=1, sort_keys=True).encode())


def known_pools() -> dict[str, str]:
    return {name: str(entry["location"]) for name, entry in _entries().items()}


def pool_ref(name_or_path: str) -> PoolRef:
    """A registered pool name known on this machine, or a pool directory."""
    path = Path(name_or_path)
    if (path / "config.json").is_file():
        return PoolRef(path.resolve().name, None, str(path.resolve()))
    index = _entries()
    if name_or_path in index:
        entry = index[name_or_path]
        return PoolRef(name_or_path, entry.get("kind"), str(entry["location"]))
    known = ", ".join(sorted(index)) or "none yet"
    raise BingoBackupError(
        f"No pool named or at '{name_or_path}' (pools known on this machine: {known}). "
        "Give a pool directory, or run `bingobackup pool list` to refresh the list."
    )


def pool_location(name_or_path: str) -> tuple[str, str]:
    """(pool name, location) for a registered pool name or a pool directory."""
    ref = pool_ref(name_or_path)
    return ref.name, ref.location
