"""Garbage collection and repack of dedup and standard pools.

Safe while backups, restores, set deletions and other collections run on any host; the
design and every interleaving are in docs/format.md ("Garbage collection"). In short:

1. Condemned lists (pools/condemned.py) of earlier runs whose every awaited lock
   (pools/locks.py) is gone are carried out: the pool is marked again (every manifest
   read) and the condemned blobs still unreferenced are deleted.
2. Repack (dedup packs, storage that can replace a manifest): a chunk that manifests name at
   two locations (two writers stored the same new data at the same moment) keeps one copy,
   checked first; packs whose live chunks fill less than the threshold (the dropped copies
   no longer count as live) have those chunks copied, as they are, into new packs (durable
   before anything names them), an index blob describes the new packs, then every manifest
   naming an old location is rewritten (sealed) to name the new one. The old copies are now
   unreferenced.
3. Everything unreferenced is condemned: a list is written, then the live locks are listed
   into its `.waits`. With none but ours, the pool is marked again and the list is carried
   out at once; otherwise the next run carries it out once those locks are gone.

A kill -9 anywhere leaves every manifest naming durable chunks, and a rerun finishes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from pydantic import BaseModel

from bingobackup.crashpoints import CRASH_AT_ENV, crash_point
from bingobackup.format.constants import CHUNKS, DATA, LOCKED_FORMAT, PACKS, ZERO_LOCATION
from bingobackup.format.errors import CorruptChunkError
from bingobackup.format.manifest import ChunkRef, DiskManifest
from bingobackup.pools.condemned import (
    CondemnedList,
    condemned_keys,
    read_condemned,
    remove_condemned,
    remove_orphan_waits,
    write_condemned,
    write_waits,
)
from bingobackup.pools.dedup import ChunkIndex, DedupPool, chunk_key, describe_packs
from bingobackup.pools.locks import PoolLock, live_locks, remove_stale_locks
from bingobackup.pools.packs import PACK_TARGET_BYTES, PackBuilder, write_index_blob
from bingobackup.pools.pool import Pool
from bingobackup.storage.base import BlobInfo
from bingobackup.storage.errors import BlobNotFoundError, PoolError

DEFAULT_REPACK_THRESHOLD = 0.5  # packs less than half live are rewritten (restic's default is 5 % unused)
# A test names one of the crash points below (prefixed "gc.") in BINGOBACKUP_CRASH_AT to have
# the collection kill itself there (bingobackup/crashpoints.py).
CRASH_POINT_ENV = CRASH_AT_ENV
CRASH_POINTS = ("condemned", "sweeping", "repack-packs", "repack-index", "repack-manifests")


class GcReport(BaseModel):
    """What one garbage collection did (or, with `dry_run`, would do)."""

    pool: str
    kind: str
    dry_run: bool
    blobs_freed: int = 0  # blobs deleted: dedup packs, chunk blobs, standard packs
    packs_freed: int = 0  # of those, packs
    bytes_freed: int = 0
    packs_repacked: int = 0
    bytes_rewritten: int = 0  # live chunk bytes copied into new packs
    manifests_rewritten: int = 0
    duplicates_dropped: int = 0  # extra copies of a chunk (concurrent writers) no longer named
    live_bytes: int = 0  # stored bytes of the chunks some backup set uses
    stored_bytes: int = 0  # every data blob's bytes after this run
    deferred_bytes: int = 0  # condemned, waiting for running backups or deletions to end
    waiting_for: list[str] = []  # those locks, described
    notes: list[str] = []


def report_rows(report: GcReport) -> list[tuple[str, str]]:
    """(figure, value) rows of a report: the CLI's table and the flow's artifact."""
    from bingobackup.mover.chunks import human_bytes

    would = "would be " if report.dry_run else ""
    rows = [
        (f"blobs {would}freed", f"{report.blobs_freed} ({report.packs_freed} packs)"),
        (f"bytes {would}freed", human_bytes(report.bytes_freed)),
        (f"packs {would}repacked", str(report.packs_repacked)),
        (f"bytes {would}rewritten", human_bytes(report.bytes_rewritten)),
        ("manifests rewritten", str(report.manifests_rewritten)),
        *(
            [("duplicate chunks dropped", str(report.duplicates_dropped))]
            if report.duplicates_dropped
            else []
        ),
        ("live bytes", human_bytes(report.live_bytes)),
        ("stored bytes after", human_bytes(report.stored_bytes)),
    ]
    if report.deferred_bytes or report.waiting_for:
        rows.append(("deferred (next run)", human_bytes(report.deferred_bytes)))
        rows.append(("waiting for", "; ".join(report.waiting_for)))
    rows += [("note", note) for note in report.notes]
    return rows


@dataclass
class _Mark:
    """What the manifests reference: blob keys, and per pack the envelope offsets in use."""

    blobs: set[str] = field(default_factory=set)
    pack_offsets: dict[str, set[int]] = field(default_factory=dict)
    live: dict[str, int] = field(default_factory=dict)  # location -> stored size
    copies: dict[str, set[str]] = field(default_factory=dict)  # chunk id -> its packed locations


def collect_garbage(
    pool: Pool,
    *,
    repack: bool = True,
    repack_threshold: float = DEFAULT_REPACK_THRESHOLD,
    dry_run: bool = False,
) -> GcReport:
    """Frees what no backup set of `pool` references; see the module docstring."""
    _check_pool(pool)
    if not 0.0 <= repack_threshold <= 1.0:
        raise ValueError(
            f"the repack threshold {repack_threshold} must lie between 0 and 1 (a fraction live)"
        )
    pool.check_config_fits()  # a foreign config.json marks nothing: stop before deleting
    report = GcReport(pool=pool.name, kind=pool.kind, dry_run=dry_run)
    if dry_run:
        _dry_run(pool, report, repack, repack_threshold)
        return report
    with PoolLock(pool.store, "gc") as own:
        remove_stale_locks(pool.store)
        files, size = pool.store.remove_dead_temps()
        if files:
            from bingobackup.mover.chunks import human_bytes

            report.notes.append(f"removed {files} temporary file(s) of killed writers ({human_bytes(size)})")
        _carry_out_ready(pool, report, own.lock_id)
        if repack:
            _repack(pool, report, repack_threshold)
        mark = _condemn_and_sweep(pool, report, own.lock_id)
        if isinstance(pool, DedupPool) and (report.blobs_freed or report.packs_repacked):
            described = describe_packs(pool)  # one index blob for what is left
            pool.merge_index_blobs(described.records(), replaces=described.read_blobs)
        remove_orphan_waits(pool.store)
    if isinstance(pool, DedupPool):
        pool.index = ChunkIndex(pool)  # read again when next needed
    report.live_bytes = sum(mark.live.values())
    report.stored_bytes = sum(info.size for info in _data_blobs(pool))
    return report


def _check_pool(pool: Pool) -> None:
    if not pool.collects_garbage:
        raise PoolError(
            f"pool {pool.name} is a {pool.kind} pool: garbage collection runs on dedup and standard "
            "pools (local or object storage); media pools expire sets by recycling media"
        )
    if pool.store.keeps_every_blob:
        raise PoolError(
            f"pool {pool.name} keeps every blob (S3 Object Lock), so garbage collection cannot delete "
            "anything there; space comes back when the bucket's lifecycle rules expire the objects"
        )
    if pool.config.format_version < LOCKED_FORMAT:
        how = (
            f"run `bingobackup pool upgrade {pool.name}` (with every backup host on this bingobackup)"
            if pool.store.replaces_blobs
            else "its write-once storage cannot be upgraded; back up into a new pool to collect garbage"
        )
        raise PoolError(
            f"pool {pool.name} has format version {pool.config.format_version}: a bingobackup that old "
            f"writes to it without a pool lock, so garbage collection could delete chunks a running "
            f"backup needs. Nothing was deleted; {how}"
        )


def _crash_point(name: str) -> None:
    crash_point(f"gc.{name}")


# -- marking ------------------------------------------------------------------------------
def _blob_of(ref: ChunkRef) -> str | None:
    if ref.location == ZERO_LOCATION:
        return None
    if "@" in ref.location:
        return ref.location.rpartition("@")[0]
    return ref.location or chunk_key(ref.digest)


def _manifests(pool: Pool) -> list[tuple[str, DiskManifest]]:
    """(key, manifest) of every committed disk, seals checked; a manifest deleted while we
    list is skipped, a damaged one stops the collection (its chunks could not be marked)."""
    found = []
    for set_id, volume_id in list(pool.list_manifests()):
        key = pool.manifest_key(set_id, volume_id)
        try:
            data = pool.store.get(key)
        except BlobNotFoundError:
            continue  # deleted by a set deletion since the listing
        manifest, sealed = pool.open_manifest(data, f"{pool.name}:{key}")
        if not sealed:
            pool._unsealed(manifest, key)
        found.append((key, manifest))
    return found


def _mark(pool: Pool) -> _Mark:
    mark = _Mark()
    for _, manifest in _manifests(pool):
        for ref in manifest.chunks:
            blob = _blob_of(ref)
            if blob is None:
                continue
            mark.blobs.add(blob)
            mark.live[ref.location] = ref.stored_size
            if "@" in ref.location:
                mark.pack_offsets.setdefault(blob, set()).add(int(ref.location.rpartition("@")[2]))
                mark.copies.setdefault(ref.digest, set()).add(ref.location)
    return mark


def _data_blobs(pool: Pool) -> list[BlobInfo]:
    """The blobs holding chunk data: what garbage collection may delete."""
    if isinstance(pool, DedupPool):
        return [*pool.store.list(f"{CHUNKS}/"), *pool.store.list(f"{DATA}/")]
    return list(pool.store.list(f"{PACKS}/"))


# -- sweeping -----------------------------------------------------------------------------
def _others(pool: Pool, own: str) -> dict[str, str]:
    return {lock.lock_id: lock.describe() for lock in live_locks(pool.store) if lock.lock_id != own}


def _carry_out_ready(pool: Pool, report: GcReport, own: str) -> None:
    """Carries out the condemned lists of earlier runs whose awaited locks are all gone."""
    lists = read_condemned(pool.store)
    if not lists:
        return
    others = _others(pool, own)
    ready = []
    for condemned in lists:
        waits = condemned.waits_for
        if waits is None:  # its collection died before writing it: wait for whoever runs now
            # Any lock listing made after the list was written will do; on write-once storage
            # another collection may have written its own first (ours is then refused).
            with contextlib.suppress(PoolError):
                write_waits(pool.store, condemned.list_id, sorted(others))
            waits = frozenset(others)
        if waits & others.keys():
            _defer(pool, report, condemned.keys, {others[i] for i in waits & others.keys()})
        else:
            ready.append(condemned)
    if ready:
        _sweep(pool, report, ready)


def _defer(pool: Pool, report: GcReport, keys: frozenset[str], waiting: set[str]) -> None:
    sizes = {info.key: info.size for info in _data_blobs(pool)}
    report.deferred_bytes += sum(sizes.get(key, 0) for key in keys)
    report.waiting_for = sorted(set(report.waiting_for) | waiting)


def _sweep(pool: Pool, report: GcReport, lists: list[CondemnedList]) -> _Mark:
    """Deletes the condemned blobs that a fresh mark finds unreferenced, then the lists."""
    mark = _mark(pool)  # after the awaited locks are gone: every manifest they wrote is seen
    sizes = {info.key: info.size for info in _data_blobs(pool)}
    doomed: set[str] = set()
    for each in lists:
        doomed |= each.keys
    for key in sorted(doomed - mark.blobs):
        if key not in sizes:
            continue  # deleted by an earlier run that died before removing its list
        try:
            pool.store.delete(key)
        except BlobNotFoundError:
            continue  # another collection deleted it
        report.blobs_freed += 1
        report.packs_freed += not key.startswith(f"{CHUNKS}/")
        report.bytes_freed += sizes[key]
        _crash_point("sweeping")
    for condemned in lists:
        remove_condemned(pool.store, condemned.list_id)
    return mark


def _condemn_and_sweep(pool: Pool, report: GcReport, own: str) -> _Mark:
    """Condemns every unreferenced data blob no list names yet; sweeps at once when no other
    process holds a lock. Returns the latest mark."""
    mark = _mark(pool)
    waiting = condemned_keys(pool.store)
    garbage = [i for i in _data_blobs(pool) if i.key not in mark.blobs and i.key not in waiting]
    if not garbage:
        return mark
    keys = [info.key for info in garbage]
    list_id = write_condemned(pool.store, keys)
    _crash_point("condemned")
    # Listed after the list is durable: a process that locks later loads its index after
    # the list exists and never reuses what it names.
    others = _others(pool, own)
    write_waits(pool.store, list_id, sorted(others))
    if others:
        report.deferred_bytes += sum(info.size for info in garbage)
        report.waiting_for = sorted(set(report.waiting_for) | set(others.values()))
        return mark
    return _sweep(pool, report, [CondemnedList(list_id, frozenset(keys), frozenset())])


# -- repack -------------------------------------------------------------------------------
def _repack_candidates(
    pool: DedupPool, mark: _Mark, threshold: float
) -> dict[str, list[tuple[int, str, int]]]:
    """Referenced packs below `threshold` live: pack key -> live (offset, chunk id, length)."""
    described = describe_packs(pool)
    candidates = {}
    for key, entries in described.entries.items():
        used = mark.pack_offsets.get(key)
        if not used:
            continue  # nothing live: condemned whole, no copy needed
        total = sum(e.length for e in entries)
        live = [(e.offset, e.digest, e.length) for e in entries if e.offset in used]
        if sum(length for _, _, length in live) < threshold * total:
            candidates[key] = live
    return candidates


def _repack(pool: Pool, report: GcReport, threshold: float) -> None:
    if not isinstance(pool, DedupPool):
        return  # a standard pack holds one disk backup, all of it live while its set exists
    if pool.packs is None:
        report.notes.append("no repack: a format-1 dedup pool stores one blob per chunk")
        return
    if not pool.store.replaces_blobs:
        report.notes.append(
            "no repack: manifests on write-once storage cannot be rewritten; partly used packs "
            "stay until their last chunk is unreferenced"
        )
        return
    with PoolLock(pool.store, "repack") as lock:
        # Visible before we look: a set deletion starting later waits for us (pool.py).
        if any(other.kind == "delete" and other.lock_id != lock.lock_id for other in live_locks(pool.store)):
            report.notes.append("repack skipped: a set deletion is running; the next run repacks")
            return
        mark = _mark(pool)
        kept = _drop_duplicates(pool, report, mark)
        candidates = _repack_candidates(pool, mark, threshold)
        moves = _copy_live_chunks(pool, report, candidates) if candidates else {}
        # A dropped copy's chunk is named where its kept copy is now (repacked or not).
        moves |= {old: moves.get(new, new) for old, new in kept.items()}
        if moves:
            sizes = {old: mark.live[new] for old, new in kept.items()}  # the kept copy's length
            _rewrite_manifests(pool, report, moves, sizes)


def _drop_duplicates(pool: DedupPool, report: GcReport, mark: _Mark) -> dict[str, str]:
    """Chunks the manifests name at more than one location (two writers stored the same new
    data at once, docs/format.md): dropped location -> the one copy kept, checked first. The
    dropped copies leave `mark`, so their packs repack or free as any other dead bytes."""
    condemned = condemned_keys(pool.store)
    kept: dict[str, str] = {}
    for digest, locations in mark.copies.items():
        if len(locations) < 2:
            continue
        # The copy kept is one no condemned list names (never one about to be deleted), and
        # the same whichever run decides: the smallest location.
        for keep in sorted(loc for loc in locations if loc.rpartition("@")[0] not in condemned):
            key, _, offset = keep.rpartition("@")
            try:
                pool.codec.open(
                    pool.store.get(key, int(offset), mark.live[keep]), digest, f"{pool.name}:{keep}"
                )
            except (CorruptChunkError, BlobNotFoundError) as error:
                report.notes.append(f"copy {keep} of chunk {digest} not kept: {error}")
                continue
            for other in locations - {keep}:
                kept[other] = keep
                pack, _, at = other.rpartition("@")
                mark.pack_offsets[pack].discard(int(at))
                report.duplicates_dropped += 1
            break
    return kept


def _copy_live_chunks(
    pool: DedupPool, report: GcReport, candidates: dict[str, list[tuple[int, str, int]]]
) -> dict[str, str]:
    """Copies the live envelopes of `candidates` into new packs, each checked first (a damaged
    chunk is not spread: its pack is left as it is); old location -> new location."""
    moves: dict[str, str] = {}
    records = []
    builder = PackBuilder()

    def close() -> None:
        nonlocal builder
        pool.store.put(builder.key, builder.blob())  # atomic and durable (blob store rule 1)
        records.append(builder.record())
        builder = PackBuilder()

    for key, live in candidates.items():
        data = pool.store.get(key)
        try:
            for offset, digest, length in live:
                pool.codec.open(data[offset : offset + length], digest, f"{pool.name}:{key}@{offset}")
        except CorruptChunkError as error:
            report.notes.append(f"pack {key} not repacked: {error}")
            continue
        for offset, digest, length in live:
            moves[f"{key}@{offset}"] = builder.add(digest, data[offset : offset + length])
            report.bytes_rewritten += length
        report.packs_repacked += 1
        if builder.size >= PACK_TARGET_BYTES:
            close()
    if builder.entries:
        close()
    _crash_point("repack-packs")
    if records:
        write_index_blob(pool.store, records)
    _crash_point("repack-index")
    return moves


def _rewrite_manifests(
    pool: DedupPool, report: GcReport, moves: dict[str, str], sizes: dict[str, int]
) -> None:
    """Every manifest naming a location in `moves` names the new one, with the stored size
    `sizes` gives for the old one (a dropped duplicate: its kept copy's, which another seal
    may have made another length), else the same (a repacked envelope is copied as it is)."""

    def moved(ref: ChunkRef) -> ChunkRef:
        size = sizes.get(ref.location, ref.stored_size)
        return ref.model_copy(update={"location": moves[ref.location], "stored_size": size})

    for _, manifest in _manifests(pool):
        if not any(ref.location in moves for ref in manifest.chunks):
            continue
        chunks = tuple(moved(ref) if ref.location in moves else ref for ref in manifest.chunks)
        pool.save_manifest(manifest.model_copy(update={"chunks": chunks}))  # sealed, atomic replace
        report.manifests_rewritten += 1
        _crash_point("repack-manifests")


# -- dry run ------------------------------------------------------------------------------
def _dry_run(pool: Pool, report: GcReport, repack: bool, threshold: float) -> None:
    """What a run would free now if no other process held a lock (nothing is written)."""
    mark = _mark(pool)
    blobs = _data_blobs(pool)
    for info in blobs:
        if info.key not in mark.blobs:
            report.blobs_freed += 1
            report.packs_freed += not info.key.startswith(f"{CHUNKS}/")
            report.bytes_freed += info.size
    if repack and isinstance(pool, DedupPool) and pool.packs is not None and pool.store.replaces_blobs:
        candidates = _repack_candidates(pool, mark, threshold)
        sizes = {info.key: info.size for info in blobs}
        report.packs_repacked = len(candidates)
        report.bytes_rewritten = sum(length for live in candidates.values() for _, _, length in live)
        report.bytes_freed += sum(sizes[key] for key in candidates) - report.bytes_rewritten
    report.live_bytes = sum(mark.live.values())
    report.stored_bytes = sum(info.size for info in blobs) - report.bytes_freed
    others = live_locks(pool.store)
    report.waiting_for = sorted(lock.describe() for lock in others)
