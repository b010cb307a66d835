"""Verify (scrub) a pool: read back every chunk its backup sets reference, or a random sample.

Each distinct stored chunk is read once, however many disks and sets reference it (a dedup
pool shares chunks), through `Pool.read_chunk`: its envelope's authentication tag (encrypted
pools) and its digest are checked. A damaged chunk is reported once per reference, naming the
set, VM, disk and disk offset, since every one of them has lost that region. Each disk's sealed
manifest is checked too (its seal, and that the catalog's rows agree with it): damage there is
reported as `manifest` or `catalog`.

Chunks are read in storage order (pack by pack, or along a tape or disc file) by a few threads:
zstd, AES-GCM and BLAKE3 release the GIL, so the threads use every core. A tape pool's are read
by one thread, cartridge by cartridge and file by file, forward: the stream read once, in order. Each thread holds one
chunk at a time; what grows with the pool is only the list of references (about 100 bytes per
chunk reference), never their data.

The engine knows nothing of the catalog: the caller (tasks/verify.py) says which disks to
verify, with the catalog's rows of each, and records what was found.
"""

from __future__ import annotations

import logging
import math
import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bingobackup.format.constants import ZERO_LOCATION
from bingobackup.format.errors import CorruptChunkError, ManifestError
from bingobackup.format.manifest import ChunkRef, DiskManifest
from bingobackup.mover.crew import thread_in_context
from bingobackup.mover.memory import keep_freed_buffers
from bingobackup.pools.pool import Pool
from bingobackup.storage.errors import PoolError

log = logging.getLogger("bingobackup.verify")

# Threads reading chunks: two per core of a small backup host, as an export decodes on
# `channels + 2`; on object storage they also overlap the round trips.
DEFAULT_THREADS = 4

DamageKind = Literal["chunk", "manifest", "catalog"]


class DiskToVerify(BaseModel):
    """One disk of one backup set, as the catalog lists it."""

    model_config = ConfigDict(frozen=True)

    set_id: str
    volume_id: str
    vm_id: str = ""
    vm_name: str = ""
    disk_name: str = ""
    indexed: DiskManifest | None = Field(default=None, description="the catalog's chunk rows of the disk")
    catalog_problem: str = Field(default="", description="why the catalog could not give its rows")


class Damage(BaseModel):
    """One damaged thing: a chunk as one disk references it, a disk's manifest, or the catalog's
    rows of a disk."""

    model_config = ConfigDict(frozen=True)

    kind: DamageKind
    set_id: str
    volume_id: str
    vm_id: str = ""
    vm_name: str = ""
    disk_name: str = ""
    offset: int | None = None
    digest: str = ""
    location: str = ""
    reason: str
    verified: bool = Field(default=True, description="False: a set outside this run sharing the chunk")


class SetOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    set_id: str
    chunks_checked: int
    bytes_checked: int
    damaged: int

    @property
    def status(self) -> Literal["ok", "damaged"]:
        return "damaged" if self.damaged else "ok"


class VerifyReport(BaseModel):
    """What a verify found; `damage` is empty when every chunk and manifest checked is sound."""

    pool: str
    sets: list[SetOutcome]
    skipped_sets: list[str] = Field(default_factory=list)
    damage: list[Damage] = Field(default_factory=list)
    distinct_chunks: int = Field(description="distinct stored chunks the verified disks reference")
    chunks_read: int
    bytes_read: int = Field(description="stored (compressed, encrypted) bytes read and checked")
    logical_bytes: int = Field(description="plaintext bytes of the chunks read")
    sampled_percent: float
    seed: int | None = None
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.damage

    @property
    def damaged_sets(self) -> list[str]:
        return [s.set_id for s in self.sets if s.damaged]

    @property
    def mb_per_second(self) -> float:
        return self.bytes_read / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def damage_rows(self) -> list[dict[str, str]]:
        """The damage as table rows, by VM, disk, offset and set (CLI table, flow artifact)."""
        rows = sorted(
            self.damage,
            key=lambda d: (d.vm_name or d.vm_id, d.volume_id, d.offset or 0, d.set_id, d.kind),
        )
        return [
            {
                "VM": d.vm_name or d.vm_id or "?",
                "disk": f"{d.volume_id} {d.disk_name}".strip(),
                "offset": "" if d.offset is None else str(d.offset),
                "set": d.set_id if d.verified else f"{d.set_id} (not verified in this run)",
                "damaged": d.kind,
                "chunk": d.digest[:16],
                "reason": d.reason,
            }
            for d in rows
        ]

    def summary_rows(self) -> list[dict[str, str]]:
        """One row per set verified: its status, chunks and stored bytes checked, damage found."""
        return [
            {
                "set": s.set_id,
                "status": s.status,
                "chunks checked": str(s.chunks_checked),
                "bytes checked": str(s.bytes_checked),
                "damaged": str(s.damaged),
            }
            for s in self.sets
        ]

    def headline(self) -> str:
        """One line: what was read, how fast, and the sample."""
        sample = (
            f", a {self.sampled_percent:g} % sample (seed {self.seed})" if self.sampled_percent < 100 else ""
        )
        skipped = (
            f"; {len(self.skipped_sets)} set(s) skipped, verified within the days asked"
            if self.skipped_sets
            else ""
        )
        return (
            f"pool {self.pool}: {len(self.sets)} set(s) verified{skipped}: {self.chunks_read} of "
            f"{self.distinct_chunks} distinct chunk(s){sample}, {self.bytes_read} stored bytes read in "
            f"{self.seconds:.1f} s ({self.mb_per_second:.1f} MB/s); "
            + (
                "nothing damaged"
                if self.ok
                else f"{len(self.damage)} damaged reference(s) in set(s) {', '.join(self.damaged_sets)}"
            )
        )

    def advice(self) -> str:
        """What to do next, for the message that ends a run with damage."""
        kinds = {d.kind for d in self.damage}
        steps = []
        if kinds & {"chunk", "manifest"}:
            steps.append(
                "restore the damaged disks from a backup set (or another copy of the pool) that does not "
                "hold the damaged chunks, check the pool's storage for errors, and run a new full backup "
                "of the VMs concerned so their next sets do not reuse the damaged chunks"
            )
        if "catalog" in kinds:
            steps.append(
                f"rebuild the catalog from the pool's sealed manifests (`bingobackup catalog rebuild --pool "
                f"{self.pool}`): the data is sound where only the catalog disagrees"
            )
        return "; ".join(steps)


# A chunk as stored, read once: (location, digest, stored size, plaintext length).
_Stored = tuple[str, str, int, int]
# One disk's use of a chunk: (index of the disk in the list verified, disk offset).
_Reference = tuple[int, int]


def _location_order(location: str) -> tuple[tuple[int, int | str], ...]:
    """Sorts locations in storage order: by pack, file or cartridge, then byte offset."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[@:]", location))


def _sample(keys: list[_Stored], percent: float, seed: int) -> list[_Stored]:
    if percent >= 100:
        return keys
    count = min(len(keys), max(1, math.ceil(len(keys) * percent / 100))) if keys else 0
    return random.Random(seed).sample(keys, count)


def _read_reason(error: BaseException) -> str:
    if isinstance(error, CorruptChunkError):
        return error.reason
    if isinstance(error, PoolError):
        return str(error)
    return f"could not be read ({type(error).__name__}: {error})"


def verify_disks(
    pool: Pool,
    disks: Sequence[DiskToVerify],
    *,
    set_ids: Sequence[str] = (),
    sample_percent: float = 100.0,
    seed: int | None = None,
    threads: int = DEFAULT_THREADS,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> VerifyReport:
    """Check the manifests of `disks` and read back their chunks (all, or `sample_percent` of
    the distinct chunks, drawn with `seed`); `progress(done, total)` counts stored bytes.
    `set_ids` are the sets verified (also those with no disk to read), in report order."""
    if not 0 < sample_percent <= 100:
        raise ValueError(f"the sample must be more than 0 % and at most 100 %, not {sample_percent}")
    if threads < 1:
        raise ValueError("verify needs at least one thread")
    if pool.kind == "tape":
        threads = (
            1  # a drive reads one place at a time: the chunks in tape order, not seeking between threads
        )
    started = time.monotonic()
    damage: list[Damage] = []
    references: dict[_Stored, list[_Reference]] = {}
    for index, disk in enumerate(disks):
        chunks = _checked_chunks(pool, disk, damage)
        for ref in chunks:
            if ref.location == ZERO_LOCATION:
                continue
            stored = (ref.location, ref.digest, ref.stored_size, ref.length)
            references.setdefault(stored, []).append((index, ref.offset))
    if sample_percent < 100 and seed is None:
        seed = secrets.randbelow(1 << 31)
    chosen = _sample(sorted(references), sample_percent, seed or 0)
    chosen.sort(key=lambda stored: _location_order(stored[0]))
    total = sum(stored[2] for stored in chosen)
    failed = _read_all(pool, chosen, total, threads, progress, cancel)
    if cancel is not None and cancel.is_set():
        raise PoolError(f"verify of pool {pool.name} was cancelled; nothing was recorded")
    for stored, reason in sorted(failed.items()):
        location, digest, _, _ = stored
        for disk_index, offset in references[stored]:
            damage.append(
                _damage(disks[disk_index], "chunk", reason, offset=offset, digest=digest, location=location)
            )
    sets = _set_outcomes([*set_ids, *(d.set_id for d in disks)], disks, references, set(chosen), damage)
    return VerifyReport(
        pool=pool.name,
        sets=sets,
        damage=damage,
        distinct_chunks=len(references),
        chunks_read=len(chosen),
        bytes_read=total,
        logical_bytes=sum(stored[3] for stored in chosen),
        sampled_percent=sample_percent,
        seed=seed if sample_percent < 100 else None,
        seconds=time.monotonic() - started,
    )


def _damage(disk: DiskToVerify, kind: DamageKind, reason: str, **where: object) -> Damage:
    return Damage.model_validate(
        {
            "kind": kind,
            "set_id": disk.set_id,
            "volume_id": disk.volume_id,
            "vm_id": disk.vm_id,
            "vm_name": disk.vm_name,
            "disk_name": disk.disk_name,
            "reason": reason,
            **where,
        }
    )


def _checked_chunks(pool: Pool, disk: DiskToVerify, damage: list[Damage]) -> tuple[ChunkRef, ...]:
    """The disk's chunks by its sealed manifest, once checked against the catalog; a manifest
    that cannot be trusted is reported, and the catalog's rows are read instead, so damaged
    chunks are still found."""
    if disk.catalog_problem:
        damage.append(_damage(disk, "catalog", disk.catalog_problem))
    try:
        manifest = pool.load_manifest(disk.set_id, disk.volume_id)
    except (ManifestError, PoolError) as error:
        offset = error.offset if isinstance(error, ManifestError) else None
        damage.append(_damage(disk, "manifest", str(error), offset=offset))
        return disk.indexed.chunks if disk.indexed is not None else ()
    if disk.indexed is not None:
        label = f"VM {disk.vm_name or disk.vm_id} disk {disk.volume_id} (set {disk.set_id})"
        try:
            pool.check_index(manifest, disk.indexed, label)
        except ManifestError as error:
            damage.append(_damage(disk, "catalog", str(error), offset=error.offset))
    return manifest.chunks


def _read_all(
    pool: Pool,
    chosen: list[_Stored],
    total: int,
    threads: int,
    progress: Callable[[int, int], None] | None,
    cancel: threading.Event | None,
) -> dict[_Stored, str]:
    """Reads and checks every chunk of `chosen` on `threads` threads; {chunk: why it is damaged}."""
    keep_freed_buffers()  # each chunk's buffers reused by the next, not page-faulted in again
    pending = iter(chosen)
    lock = threading.Lock()
    failed: dict[_Stored, str] = {}
    done = [0]

    def work() -> None:
        while cancel is None or not cancel.is_set():
            with lock:
                stored = next(pending, None)
            if stored is None:
                return
            location, digest, stored_size, length = stored
            ref = ChunkRef(offset=0, length=length, digest=digest, stored_size=stored_size, location=location)
            reason = ""
            try:
                plaintext = pool.read_chunk(ref)
                if len(plaintext) != length:
                    reason = f"came back with {len(plaintext)} bytes instead of {length}"
                del plaintext
            except Exception as error:  # every way a chunk cannot be read back is damage to report
                reason = _read_reason(error)
            with lock:
                if reason:
                    failed[stored] = reason
                done[0] += stored_size
                finished = done[0]
            if reason:
                log.warning("pool %s: chunk %s at %s is damaged: %s", pool.name, digest, location, reason)
            if progress is not None:
                progress(finished, total)

    workers = [thread_in_context(work, name=f"verify-{n}") for n in range(min(threads, max(1, len(chosen))))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if progress is not None:
        progress(total, total)
    return failed


def _set_outcomes(
    set_ids: list[str],
    disks: Sequence[DiskToVerify],
    references: dict[_Stored, list[_Reference]],
    chosen: set[_Stored],
    damage: list[Damage],
) -> list[SetOutcome]:
    per_set: dict[str, set[_Stored]] = {set_id: set() for set_id in set_ids}
    for stored, refs in references.items():
        if stored in chosen:
            for disk_index, _ in refs:
                per_set[disks[disk_index].set_id].add(stored)
    damaged: dict[str, int] = {}
    for item in damage:
        damaged[item.set_id] = damaged.get(item.set_id, 0) + 1
    return [
        SetOutcome(
            set_id=set_id,
            chunks_checked=len(read),
            bytes_checked=sum(stored[2] for stored in read),
            damaged=damaged.get(set_id, 0),
        )
        for set_id, read in per_set.items()
    ]
