"""Deleting a backup set from a pool, with the checks every deletion makes first.

The pool side only: `catalog.lifecycle` calls `delete_set_from_pool` and then writes the set's
tombstone, so the catalog never names a set whose data is half gone for longer than the
deletion takes (and a rerun finishes an interrupted one).

- A set whose blobs are still under an S3 Object Lock retention is refused, saying until when.
- Dedup pools: the set's manifests go; its chunks stay until `bingobackup gc` frees the ones
  no other set uses. Standard pools: the manifests, then the set's own packs.
- Tape and optical: the set's manifests leave the pool home (it is *expired*); its data stays
  on the media. A cartridge or disc is released for reuse only once every set on it is
  expired (`released_media`); nothing on a medium is ever overwritten here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from bingobackup.format.constants import STREAM_HEADER as HEADER
from bingobackup.pools.opticalpool import OpticalPool
from bingobackup.pools.pool import Pool
from bingobackup.pools.stream import MediaPool, parse_stream
from bingobackup.pools.tapepool import TapePool
from bingobackup.storage.errors import PoolError

_HEAD_BYTES = 4096  # a stream file's header record fits well inside


class SetLockedError(PoolError):
    """The set's blobs are under a retention lock: it cannot be deleted yet."""

    def __init__(self, message: str, until: datetime) -> None:
        super().__init__(message)
        self.until = until


@dataclass(frozen=True)
class DeletedSet:
    set_id: str
    blobs_removed: int
    data_removed: bool  # False on tape/optical: expired, the data stays on the media


def locked_until(pool: Pool, set_id: str, now: datetime) -> datetime | None:
    """When the last retention lock on the set's blobs ends, if one still holds at `now`."""
    if not pool.store.keeps_every_blob:
        return None
    ends = [until for key in pool.set_keys(set_id) if (until := pool.store.retained_until(key)) is not None]
    latest = max(ends, default=None)
    return latest if latest is not None and latest > now else None


def check_deletable(pool: Pool, set_id: str, now: datetime) -> None:
    """SetLockedError naming the date when the set may be deleted, if it may not be now."""
    until = locked_until(pool, set_id, now)
    if until is not None:
        raise SetLockedError(
            f"backup set {set_id} of pool {pool.name} is under S3 Object Lock until "
            f"{until:%Y-%m-%d %H:%M} UTC and cannot be deleted before then; it is kept, prune again after that date",
            until,
        )


def delete_set_from_pool(pool: Pool, set_id: str, now: datetime) -> DeletedSet:
    """Checks, then removes the set's manifests and the data only it uses (crash-safe:
    `Pool.delete_set`). The caller writes the catalog tombstone after this returns."""
    check_deletable(pool, set_id, now)
    removed = pool.delete_set(set_id)
    return DeletedSet(set_id, removed, data_removed=not isinstance(pool, MediaPool))


def _header_set_id(head: bytes) -> str | None:
    for tag, _, payload in parse_stream(head):
        if tag == HEADER:
            return str(json.loads(payload).get("set_id", "")) or None
    return None


def sets_on_media(pool: Pool) -> dict[str, set[str]]:
    """Per cartridge or closed disc of a media pool, the backup sets with a file on it (read
    from each file's header). The disc being filled is left out: it is never released."""
    media: dict[str, set[str]] = {}
    if isinstance(pool, TapePool):
        for cartridge in pool.library.cartridges():
            found = media.setdefault(cartridge.barcode, set())
            for number in range(cartridge.files):
                set_id = _header_set_id(cartridge.read_head(number, _HEAD_BYTES))
                found.add(set_id or "?")  # an unreadable header: never released
    elif isinstance(pool, OpticalPool):
        for disc in pool.discs.closed():
            media[disc.label] = {f.set_id for f in disc.files}
    return media


def released_media(pool: Pool, expired: set[str]) -> list[str]:
    """The cartridges or closed discs every set of which is expired (and that hold any):
    they may be erased and reused. Empty for pools that are not on removable media."""
    return sorted(medium for medium, sets in sets_on_media(pool).items() if sets and sets <= expired)
