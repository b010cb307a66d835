"""The content layer shared by every pool kind: chunks in envelopes, manifests, reading back.

A `Pool` sits on a `BlobStore` (base.py) and is opened from its config (open.py). Pool kinds
differ only in where a disk's chunks go: one content-addressed blob per chunk shared by all
backups (dedup.py), or one pack per disk backup (standard.py).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import ClassVar, TypeVar

from pydantic import ValidationError

from bingobackup.crashpoints import crash_point
from bingobackup.format.config import PoolConfig
from bingobackup.format.constants import MANIFESTS, SEAL_FIELD, SEALED_FORMAT, ZERO_LOCATION
from bingobackup.format.envelope import EnvelopeCodec
from bingobackup.format.errors import CorruptChunkError, ForeignConfigError, ManifestError
from bingobackup.format.manifest import ChunkRef, DiskManifest, first_difference, manifest_seal, sealed_json
from bingobackup.format.zero import is_zero
from bingobackup.pools.locks import STALE_SECONDS, PoolLock, live_locks
from bingobackup.pools.writer import DiskWriter
from bingobackup.storage.base import BlobStore
from bingobackup.storage.errors import BlobNotFoundError, PoolError

W = TypeVar("W", bound=DiskWriter)
log = logging.getLogger("bingobackup.pools")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}")
# How often a set deletion looks again whether a repack still rewrites manifests.
REPACK_POLL_SECONDS = 0.5
# Manifests (and their first chunks) a writer weighs its config.json's key against (check_config_fits).
CONFIG_CHECK_MANIFESTS = 3


def check_name(what: str, value: str) -> str:
    """Set and volume ids become path components: keep them to safe characters."""
    if not _NAME.fullmatch(value):
        raise ValueError(f"{what} {value!r} must be 1-200 letters, digits or ._:@+- and not start with a dot")
    return value


class Pool(ABC):
    """An open pool. Thread-safe. Secrets (the keys inside `codec`) never show in repr."""

    kind: ClassVar[str]
    # Kinds whose unreferenced data garbage collection removes (bingobackup/lifecycle/gc.py):
    # their writers and set deletions hold a lock in the pool while they run (locks.py).
    collects_garbage: ClassVar[bool] = False

    def __init__(self, store: BlobStore, config: PoolConfig, codec: EnvelopeCodec) -> None:
        if config.encrypted and codec.manifest_key is None:
            raise ValueError("an encrypted pool's codec needs the manifest-seal key")
        self.store = store
        self.config = config
        self.codec = codec
        self._warned_unsealed = False
        self._config_fits = False
        self._writer_lock: PoolLock | None = None
        self._writers = 0
        self._writers_guard = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, encrypted={self.config.encrypted})"

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def chunk_size(self) -> int:
        return self.config.chunk_size

    @staticmethod
    def is_zero(chunk: bytes | bytearray | memoryview) -> bool:
        return is_zero(chunk)

    def chunk_digest(self, plaintext: bytes | bytearray | memoryview) -> str:
        """The chunk id (keyed in an encrypted pool, so it differs from pool to pool)."""
        return self.codec.digester.hexdigest(plaintext)

    # -- writing -------------------------------------------------------------------------
    @abstractmethod
    def open_disk_writer(self, set_id: str, volume_id: str, size_bytes: int) -> DiskWriter: ...

    @property
    def registers_writers(self) -> bool:
        """Whether writers hold a lock here: where garbage collection can run (not on storage
        that keeps every blob, where it deletes nothing)."""
        return self.collects_garbage and not self.store.keeps_every_blob

    def _registered(self, open_writer: Callable[[], W]) -> W:
        """`open_writer()`'s writer, counted in this process's backup lock (one lock blob for
        all of a process's writers; the first takes it, the last one done releases it)."""
        if not self.registers_writers:
            return open_writer()
        with self._writers_guard:
            if self._writers == 0:
                self._writer_lock = PoolLock(self.store, "backup").acquire()
                self._writing_started()
            self._writers += 1
        try:
            writer = open_writer()
        except BaseException:
            self.writer_ended()
            raise
        writer.holds_pool_lock = True
        return writer

    def _writing_started(self) -> None:  # noqa: B027 - only the dedup kind has an index to reload
        """Called once this process's backup lock is held, before its writers look at the pool."""

    def writer_ended(self) -> None:
        with self._writers_guard:
            if self._writers == 0:
                return
            self._writers -= 1
            if self._writers or self._writer_lock is None:
                return
            lock, self._writer_lock = self._writer_lock, None
        lock.release()

    def check_writer_lock(self) -> None:
        """Raises when this process's backup lock went stale: what it wrote may be collected."""
        lock = self._writer_lock
        if lock is not None:
            lock.check_fresh()

    # -- reading -------------------------------------------------------------------------
    @abstractmethod
    def _read_envelope(self, ref: ChunkRef) -> bytes: ...

    def _read_packed(self, ref: ChunkRef) -> bytes:
        """The envelope at a `<pack key>@<offset>` location (standard and dedup packs)."""
        key, _, offset = ref.location.rpartition("@")
        if not key or not offset.isdigit():
            raise PoolError(f"chunk {ref.digest} has location {ref.location!r}, not <pack>@<offset>")
        return self.store.get(key, int(offset), ref.stored_size)

    def read_chunk(self, ref: ChunkRef) -> bytes:
        """The chunk's plaintext, verified against `ref.digest` (CorruptChunkError otherwise)."""
        if ref.location == ZERO_LOCATION:
            return bytes(ref.length)
        envelope = self._read_envelope(ref)
        return self.codec.open(envelope, ref.digest, f"{self.name}:{ref.location}")

    def iter_disk(self, manifest: DiskManifest) -> Iterator[tuple[ChunkRef, bytes]]:
        """(ref, plaintext) of every stored chunk in disk order; gaps read as zeros."""
        for ref in manifest.chunks:
            yield ref, self.read_chunk(ref)

    # -- manifests -----------------------------------------------------------------------
    @staticmethod
    def manifest_key(set_id: str, volume_id: str) -> str:
        return f"{MANIFESTS}/{check_name('set id', set_id)}/{check_name('volume id', volume_id)}.json"

    def manifest_seal(self, manifest: DiskManifest) -> str:
        return manifest_seal(manifest, self.config.pool_id, self.codec.manifest_key)

    def sealed_manifest_json(self, manifest: DiskManifest) -> bytes:
        """The manifest as stored: in `manifests/` and as a media stream's trailer."""
        return sealed_json(manifest, self.manifest_seal(manifest))

    def save_manifest(self, manifest: DiskManifest) -> None:
        self.store.put(
            self.manifest_key(manifest.set_id, manifest.volume_id), self.sealed_manifest_json(manifest)
        )

    def open_manifest(self, data: bytes, where: str) -> tuple[DiskManifest, bool]:
        """(the manifest in `data`, whether it carries a seal). A seal that does not match
        raises ManifestError: where the chunks belong was altered or damaged."""
        try:
            raw = json.loads(data)
            seal = raw.pop(SEAL_FIELD, None) if isinstance(raw, dict) else None
            manifest = DiskManifest.model_validate(raw)
        except (ValueError, ValidationError) as error:
            raise ManifestError(
                f"{where} is not a readable disk manifest ({type(error).__name__}); restore it from "
                "another copy of the pool, or restore this disk from another backup set",
                "",
                "",
            ) from None
        if seal is None:
            return manifest, False
        if not isinstance(seal, str) or not hmac.compare_digest(seal, self.manifest_seal(manifest)):
            raise ManifestError(
                f"the manifest of disk {manifest.volume_id} in backup set {manifest.set_id} on pool "
                f"{self.name} ({where}) fails its seal check: it was altered or damaged after the "
                "backup, so where its chunks belong cannot be trusted. Nothing was read from it; "
                "restore this disk from another backup set or another copy of the pool, and check "
                "who can write to the pool's storage",
                manifest.set_id,
                manifest.volume_id,
            )
        return manifest, True

    def load_manifest(self, set_id: str, volume_id: str) -> DiskManifest:
        """The disk's manifest, its seal checked: what exports and restores follow. A pool of
        format version 3 or later refuses one without a seal; an older pool's is read with a
        warning that it is not authenticated (`bingobackup pool upgrade` seals them)."""
        key = self.manifest_key(set_id, volume_id)
        try:
            data = self.store.get(key)
        except BlobNotFoundError:
            raise PoolError(
                f"pool {self.name} holds no backup of volume {volume_id} in set {set_id}; "
                "list what it holds with `bingobackup catalog query`"
            ) from None
        try:
            manifest, sealed = self.open_manifest(data, f"{self.name}:{key}")
        except ManifestError:
            self.check_config_fits()  # a foreign config.json fails every seal: say so instead
            raise
        if (manifest.set_id, manifest.volume_id) != (set_id, volume_id):
            raise ManifestError(
                f"the manifest stored as disk {volume_id} of backup set {set_id} on pool {self.name} "
                f"describes disk {manifest.volume_id} of set {manifest.set_id}: it was moved or "
                "copied over another. Nothing was read from it; restore this disk from another "
                "backup set or another copy of the pool",
                set_id,
                volume_id,
            )
        if not sealed:
            self._unsealed(manifest, key)
        return manifest

    def check_config_fits(self) -> None:
        """Raises ForeignConfigError when the key and pool id of config.json seal none of the
        pool's manifests: another pool's config.json (made with the same passphrase, so it
        opens) was put in place of this one's. Writers call it before writing anything, so no
        backup lands in a pool under a foreign key. Checked once per open pool; a pool with no
        sealed manifest yet has nothing to check against."""
        if self._config_fits:
            return
        checked = self._config_misfits()
        if checked:
            raise ForeignConfigError(self.store.name, checked, self.name)
        self._config_fits = True

    def _config_misfits(self) -> list[str]:
        """The manifests checked, when they show config.json is not this pool's; [] when one
        passes its seal, or nothing tells. A damaged manifest must not pass for a foreign config,
        so a failed seal (or a manifest of a version-1 or -2 pool, which has none) is weighed by
        the manifest's first stored chunk: it does not open under a foreign key (nor an
        encrypted chunk under a plain config), and it does under the pool's own. A plain pool's
        chunks open under any plain config: there two failed seals and none passing are needed.
        Up to `CONFIG_CHECK_MANIFESTS` manifests are weighed, so one whose chunk was forged does
        not make the config foreign while another passes."""
        checked: list[str] = []
        failed_seals = 0
        key_refused = False
        for examined, (set_id, volume_id) in enumerate(self.list_manifests()):
            if examined >= 4 * CONFIG_CHECK_MANIFESTS or len(checked) >= CONFIG_CHECK_MANIFESTS:
                break
            key = self.manifest_key(set_id, volume_id)
            try:
                raw = json.loads(self.store.get(key))
                seal = raw.pop(SEAL_FIELD, None)
                manifest = DiskManifest.model_validate(raw)
            except (BlobNotFoundError, ValueError, ValidationError, AttributeError):
                continue  # deleted meanwhile, or damaged past reading: says nothing of the key
            if isinstance(seal, str):
                if hmac.compare_digest(seal, self.manifest_seal(manifest)):
                    return []
                failed_seals += 1
            checked.append(key)
            opens = self._opens_a_chunk(manifest)
            if opens and self.config.encrypted:
                return []  # the key fits: a failed seal means this manifest itself was altered
            key_refused |= opens is False  # the others are still tried: one may pass
        return checked if key_refused or failed_seals >= 2 else []

    def _opens_a_chunk(self, manifest: DiskManifest) -> bool | None:
        """Whether the first stored chunk `manifest` names opens under this config (None: it
        names none, or its blob cannot be read at all)."""
        for ref in manifest.chunks:
            if ref.location == ZERO_LOCATION:
                continue
            try:
                self.read_chunk(ref)
            except CorruptChunkError as error:
                return False if error.key_refused else None
            except Exception:  # a missing or unreadable blob says nothing of the key
                return None
            return True
        return None

    def _unsealed(self, manifest: DiskManifest, key: str) -> None:
        if self.config.format_version >= SEALED_FORMAT:
            raise ManifestError(
                f"the manifest of disk {manifest.volume_id} in backup set {manifest.set_id} on pool "
                f"{self.name} ({key}) has no seal, although the pool's format version "
                f"{self.config.format_version} seals every manifest: it was replaced or altered. "
                "Nothing was read from it; restore this disk from another backup set or another "
                "copy of the pool",
                manifest.set_id,
                manifest.volume_id,
            )
        if not self._warned_unsealed:
            self._warned_unsealed = True
            log.warning(
                "pool %s has format version %d: its manifests are not sealed, so a changed chunk "
                "offset in them would go unnoticed; run `bingobackup pool upgrade %s` to seal them",
                self.name,
                self.config.format_version,
                self.name,
            )

    def checked_manifest(self, indexed: DiskManifest, label: str = "") -> DiskManifest:
        """The sealed manifest of the disk `indexed` (the catalog's rows) describes, once the
        two agree on every chunk's place; ManifestError naming the disk and offset otherwise.
        The catalog only finds a disk: what is written follows the sealed manifest."""
        manifest = self.load_manifest(indexed.set_id, indexed.volume_id)
        self.check_index(manifest, indexed, label)
        return manifest

    def check_index(self, manifest: DiskManifest, indexed: DiskManifest, label: str = "") -> None:
        """ManifestError naming the disk and offset unless the catalog's rows `indexed` place
        every chunk where the sealed `manifest` does (`verify` reports it as catalog damage)."""
        difference = first_difference(manifest, indexed)
        if difference is None:
            return
        offset, what = difference
        where = f" at disk offset {offset}" if offset is not None else ""
        disk = label or f"disk {indexed.volume_id} (set {indexed.set_id})"
        raise ManifestError(
            f"{disk}: the catalog of pool {self.name} disagrees with the pool's sealed manifest{where}: "
            f"{what}. Nothing was written. The catalog was altered or damaged; rebuild it from the "
            f"pool's manifests (`bingobackup catalog rebuild --pool {self.name}`) and try again",
            indexed.set_id,
            indexed.volume_id,
            offset,
        )

    def list_manifests(self) -> Iterator[tuple[str, str]]:
        """(set_id, volume_id) of every committed disk backup."""
        for info in self.store.list(f"{MANIFESTS}/"):
            _, set_id, file_name = info.key.split("/", 2)
            if file_name.endswith(".json"):
                yield set_id, file_name.removesuffix(".json")

    def set_keys(self, set_id: str) -> list[str]:
        """The blobs `delete_set` removes: the set's manifests, then the data only it uses."""
        manifests = [info.key for info in self.store.list(f"{MANIFESTS}/{check_name('set id', set_id)}/")]
        return manifests + self._set_data_keys(set_id)

    def delete_set(self, set_id: str) -> int:
        """Removes a backup set's manifests, then the data only it uses, durably; returns blobs removed.

        Crash-safe: the manifests go first, so a set interrupted halfway is already gone for a
        restore (which follows the manifests) and a rerun removes the rest. Shared chunks of a
        dedup pool stay for garbage collection. A blob another deletion removed meanwhile is
        no error. Holds a `delete` lock meanwhile, and waits while a repack rewrites manifests
        (it would write back a manifest deleted under it)."""
        with self._deletion_lock():
            removed = 0
            for key in self.set_keys(set_id):
                with contextlib.suppress(BlobNotFoundError):
                    self.store.delete(key)
                    removed += 1
                crash_point("delete.blob-removed")
            # Durable before the caller records the deletion (a catalog tombstone): a power
            # loss must not bring back manifests of a set the catalog says is gone, pinning
            # its chunks against garbage collection for good.
            self.store.sync_deletions()
            return removed

    @contextlib.contextmanager
    def _deletion_lock(self) -> Iterator[None]:
        if not self.registers_writers:
            yield
            return
        lock = PoolLock(self.store, "delete").acquire()
        try:
            # The lock is visible before we look: a repack that starts later sees it and skips.
            waited_since = time.monotonic()
            while any(other.kind == "repack" for other in live_locks(self.store)):
                if time.monotonic() - waited_since > STALE_SECONDS:
                    raise PoolError(
                        f"pool {self.name}: a repack has held the pool for {STALE_SECONDS:.0f} s; "
                        "nothing was deleted. Try again when garbage collection has finished"
                    )
                lock.stop_event.wait(REPACK_POLL_SECONDS)
            yield
        finally:
            lock.release()

    def _set_data_keys(self, set_id: str) -> list[str]:
        """The data blobs only this set uses (a standard pool's packs); none in a shared store."""
        return []
