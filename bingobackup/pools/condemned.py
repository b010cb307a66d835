"""Condemned lists: blobs garbage collection will delete once no earlier user can need them.

`gc/<list id>.condemned` names the blobs (packs, chunk blobs, standard packs) a collection
found unreferenced or repacked; `gc/<list id>.waits` is written right after it, naming the
locks (locks.py) that were live then. A list is carried out (its blobs deleted, if still
unreferenced when checked again) once every lock it waits for is gone; a list without its
`.waits` (its collection died in between) waits for every lock live when the next
collection finds it. A dedup writer that loads its index after a list exists never reuses
a chunk only a condemned blob holds (it stores the chunk again), so no new reference to a
condemned blob can appear. Format: JSON `{"keys": [...]}` and `{"locks": [...]}`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from dataclasses import dataclass

from bingobackup.format.constants import CONDEMNED_SUFFIX as _CONDEMNED
from bingobackup.format.constants import GARBAGE
from bingobackup.format.constants import WAITS_SUFFIX as _WAITS
from bingobackup.storage.base import BlobStore
from bingobackup.storage.errors import BlobNotFoundError

log = logging.getLogger("bingobackup.pools")


@dataclass(frozen=True)
class CondemnedList:
    list_id: str
    keys: frozenset[str]
    waits_for: frozenset[str] | None  # lock ids; None while its `.waits` is not written


def write_condemned(store: BlobStore, keys: list[str]) -> str:
    list_id = uuid.uuid4().hex
    store.put(f"{GARBAGE}/{list_id}{_CONDEMNED}", json.dumps({"keys": sorted(keys)}).encode())
    return list_id


def write_waits(store: BlobStore, list_id: str, lock_ids: list[str]) -> None:
    store.put(f"{GARBAGE}/{list_id}{_WAITS}", json.dumps({"locks": sorted(lock_ids)}).encode())


def read_condemned(store: BlobStore) -> list[CondemnedList]:
    """Every condemned list in the pool; an unreadable one is skipped with a warning (its
    blobs then simply stay until a later collection condemns them again)."""
    names = {info.key for info in store.list(f"{GARBAGE}/")}
    lists = []
    for key in sorted(names):
        if not key.endswith(_CONDEMNED):
            continue
        stem = key.removesuffix(_CONDEMNED)
        try:
            keys = frozenset(str(k) for k in json.loads(store.get(key))["keys"])
            waits = None
            if f"{stem}{_WAITS}" in names:
                waits = frozenset(str(k) for k in json.loads(store.get(f"{stem}{_WAITS}"))["locks"])
        except BlobNotFoundError:
            continue  # carried out by another collection while we listed
        except (ValueError, KeyError, TypeError):
            log.warning("pool %s: condemned list %s is not readable; ignored", store.name, key)
            continue
        lists.append(CondemnedList(stem.removeprefix(f"{GARBAGE}/"), keys, waits))
    return lists


def condemned_keys(store: BlobStore) -> frozenset[str]:
    """Every blob some condemned list names: what a writer must not reuse."""
    keys: set[str] = set()
    for condemned in read_condemned(store):
        keys |= condemned.keys
    return frozenset(keys)


def remove_condemned(store: BlobStore, list_id: str) -> None:
    """Deletes a carried-out list: `.condemned` first, so a crash in between leaves a `.waits`
    alone, which nothing reads and the next collection deletes."""
    for suffix in (_CONDEMNED, _WAITS):
        with contextlib.suppress(BlobNotFoundError):
            store.delete(f"{GARBAGE}/{list_id}{suffix}")


def remove_orphan_waits(store: BlobStore) -> None:
    names = {info.key for info in store.list(f"{GARBAGE}/")}
    for key in names:
        if key.endswith(_WAITS) and f"{key.removesuffix(_WAITS)}{_CONDEMNED}" not in names:
            with contextlib.suppress(BlobNotFoundError):
                store.delete(key)
