"""The six pool kinds (and dedup pools of format version 1) the pool conformance suite runs over, each as a case that knows how to
create its pool, open it again (what another process would do), damage stored bytes behind
the pool's back (bit rot on the medium), and run the pool out of room.

dedup, standard: a local directory (a fault-injecting store, so ENOSPC can be armed).
object: moto's S3 server behind a fault-injecting proxy (a quota answer when armed).
lanfree: a pool registered as LAN-free storage of a backup host, opened through its registration.
tape: an emulated library of two 1 MiB cartridges; optical: two 1 MiB discs (`max_discs=2`).
Media kinds run out of room by being small: the suite's large disk does not fit on them.
"""

from __future__ import annotations

import errno
import struct
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pycdlib
import pytest
from pydantic import SecretStr

from bingobackup.format.constants import CHUNK_RECORD as STANDARD_RECORD
from bingobackup.format.constants import CONFIG_NAME
from bingobackup.format.constants import STANDARD_PACK_HEADER as PACK_HEADER
from bingobackup.format.constants import STREAM_CHUNK as CHUNK_RECORD
from bingobackup.format.crypto import unwrap_master_key, wrap_master_key
from bingobackup.format.manifest import ChunkRef
from bingobackup.media.discs import SECTOR, OpticalSettings, file_name
from bingobackup.media.tapelib import LibrarySettings, TapeLibrary
from bingobackup.pools import Pool, create_pool_in, open_pool_in
from bingobackup.pools.opticalpool import OpticalPool, create_optical_pool, open_optical_pool
from bingobackup.pools.packs import list_packs, read_pack_index
from bingobackup.pools.stream import parse_stream
from bingobackup.pools.tapepool import TapePool, create_tape_pool, open_tape_pool
from bingobackup.resources.models import PoolRegistration, User
from bingobackup.resources.pools import create_registered_pool, open_registered_pool
from bingobackup.resources.store import InMemoryRegistryStore
from bingobackup.storage.testing.cases import LocalCase, StoreCase, temp_files
from support.backends import S3Case
from support.pools import CHUNK, FAST_SCRYPT_N, Variant, tree_snapshot

POOL_NAME = "pool"  # every case's pool is called this, so messages can be matched
MEDIA_BYTES = 1 << 20  # one cartridge, one disc
BARCODES = ["CT0001L8", "CT0002L8"]
TAPE_BLOCK = 16 << 10
_TAPE_RECORD = struct.Struct(">cI")  # tapelib's documented framing: kind, payload length


class PoolCase(ABC):
    """One pool of one kind under test."""

    kind: str
    pool: Pool
    full_detail: str  # what PoolFullError says is full

    def __init__(self, variant: Variant, root: Path) -> None:
        self.variant = variant
        self.root = root

    @abstractmethod
    def open(self, passphrase: str | None) -> Pool:
        """The pool opened afresh, the way this kind is opened in production."""

    def reopen(self) -> Pool:
        return self.open(self.variant.passphrase)

    def creation_options(self) -> dict[str, Any]:
        """What every kind is created with for this variant (small chunks, fast scrypt)."""
        return {
            "chunk_size": CHUNK,
            "encrypted": self.variant.encrypted,
            "passphrase": self.variant.passphrase,
            "compression": self.variant.compression,
            "scrypt_n": FAST_SCRYPT_N,
        }

    @abstractmethod
    def damage(self, ref: ChunkRef, at: int) -> None:
        """Flips one bit `at` bytes into the chunk's stored envelope, behind the pool's back."""

    def run_out_of_room(self) -> None:  # noqa: B027 - media kinds are sized to run out by themselves
        """From now on the pool cannot take the rest of the suite's large disk."""

    def make_room(self) -> None:  # noqa: B027
        """Undoes `run_out_of_room` where it armed a fault."""

    @abstractmethod
    def leftovers(self) -> list[str]:
        """Traces of unfinished writes a reader could trip over (temp files, open uploads)."""

    @abstractmethod
    def snapshot(self) -> dict[str, object]:
        """Everything stored, to prove an operation touched nothing."""

    @abstractmethod
    def chunk_bytes(self) -> int:
        """Bytes the pool holds for chunks (not headers, manifests or framing)."""

    def close_media(self) -> None:  # noqa: B027 - only optical discs are closed (burned)
        """Ends the backup window: an optical pool closes its open disc into an ISO image."""

    def close(self) -> None:  # noqa: B027
        pass


class BlobCase(PoolCase):
    """A pool on a blob store: dedup and standard (local), object (S3), LAN-free."""

    def __init__(self, variant: Variant, root: Path, store: StoreCase, kind: str, full_detail: str) -> None:
        super().__init__(variant, root)
        self.kind = kind
        self.store = store
        self.full_detail = full_detail
        self.pool = self.create()

    def create(self) -> Pool:
        return create_pool_in(
            self.store.store,
            self.variant.kind,  # type: ignore[arg-type]
            **self.creation_options(),
        )

    def open(self, passphrase: str | None) -> Pool:
        return open_pool_in(self.store.fresh_store(), passphrase)

    def damage(self, ref: ChunkRef, at: int) -> None:
        key, _, offset = ref.location.partition("@")  # a dedup blob, or a standard pack @ offset
        raw = bytearray(self.store.read_raw(key))
        raw[int(offset or 0) + at] ^= 0x01
        self.store.write_raw(key, bytes(raw))

    def run_out_of_room(self) -> None:
        self.store.fail_with(errno.ENOSPC)  # a local disk's ENOSPC; S3: a QuotaExceeded answer

    def make_room(self) -> None:
        self.store.fail_with(None)

    def leftovers(self) -> list[str]:
        return self.store.leftovers()

    def snapshot(self) -> dict[str, object]:
        return dict(self.store.snapshot())

    def chunk_bytes(self) -> int:
        store = self.pool.store
        chunk_files = sum(i.size for i in store.list("chunks/"))
        packed = sum(e.length for info in list_packs(store) for e in read_pack_index(store, info))
        return chunk_files + packed + sum(i.size - len(PACK_HEADER) for i in store.list("packs/"))

    def close(self) -> None:
        self.store.close()


class DedupV1Case(BlobCase):
    """A dedup pool made by format version 1 (one blob per chunk): such pools go on being
    written in that layout, so an older bingobackup still reads them."""

    def create(self) -> Pool:
        config = super().create().config
        update: dict[str, Any] = {"format_version": 1}
        if config.key is not None:  # version 1 wrapped the key without binding it to a version
            passphrase = self.variant.passphrase or ""
            master = unwrap_master_key(
                config.key, passphrase, config.pool_id, POOL_NAME, config.format_version
            )
            update["key"] = wrap_master_key(master, passphrase, config.pool_id, 1, FAST_SCRYPT_N)
        self.store.write_raw(CONFIG_NAME, config.model_copy(update=update).to_json())  # as version 1 wrote it
        return open_pool_in(self.store.store, self.variant.passphrase)


class LanFreeCase(BlobCase):
    """Created through the registry as LAN-free storage of one backup host; reopened through its
    registration. The pool under test writes through a fault-injecting store over the same LUN."""

    def create(self) -> Pool:
        self.registration = create_registered_pool(
            InMemoryRegistryStore(),
            User(name="root", role="admin"),
            name=POOL_NAME,
            kind="lanfree",
            location=self.root / POOL_NAME,
            chunk_size=CHUNK,
            encrypted=self.variant.encrypted,
            passphrase=self.variant.passphrase,
            compression=self.variant.compression,
            pool_format=self.variant.kind,  # type: ignore[arg-type]
            backup_hosts=["i-LANFREE1"],
        )
        return open_pool_in(self.store.store, self.variant.passphrase)

    def open(self, passphrase: str | None) -> Pool:
        secret = SecretStr(passphrase) if passphrase else None
        registration: PoolRegistration = self.registration.model_copy(update={"passphrase": secret})
        return open_registered_pool(registration)


class MediaCase(PoolCase):
    """A pool on removable media (tape, optical): everything lives under the case's root."""

    def leftovers(self) -> list[str]:
        return [str(p) for p in temp_files(self.root)]

    def snapshot(self) -> dict[str, object]:
        return dict(tree_snapshot(self.root))


class TapeCase(MediaCase):
    kind = "tape"
    full_detail = f"no cartridge after cartridge {BARCODES[-1]} has room"

    def __init__(self, variant: Variant, root: Path) -> None:
        super().__init__(variant, root)
        settings = LibrarySettings(block_size=TAPE_BLOCK, capacity_bytes=MEDIA_BYTES)
        TapeLibrary.create(root / "library", settings, BARCODES)
        self.pool: TapePool = create_tape_pool(
            root / POOL_NAME,
            TapeLibrary(root / "library"),
            **self.creation_options(),
        )

    def open(self, passphrase: str | None) -> TapePool:
        return open_tape_pool(self.root / POOL_NAME, TapeLibrary(self.root / "library"), passphrase)

    def damage(self, ref: ChunkRef, at: int) -> None:
        _, barcode, file_number, offset = ref.location.split(":")
        path = self.root / "library" / "cartridges" / f"{barcode}.tape"
        raw = bytearray(path.read_bytes())
        raw[_tape_position(raw, int(file_number), int(offset) + at)] ^= 0x01
        path.write_bytes(bytes(raw))

    def chunk_bytes(self) -> int:
        return sum(
            _stream_chunk_bytes(cartridge.read_file(n))
            for cartridge in self.pool.library.cartridges()
            for n in range(cartridge.files)
        )


def _tape_position(raw: bytearray, file_number: int, offset: int) -> int:
    """Where byte `offset` of tape file `file_number` is in a cartridge file: walk the records
    (5-byte header; a block is followed by block_size bytes, a filemark by nothing)."""
    position, current, in_file = 0, 0, 0
    while position < len(raw):
        kind, size = _TAPE_RECORD.unpack_from(raw, position)
        if kind == b"M":
            current += 1
            position += _TAPE_RECORD.size
            continue
        if current == file_number and in_file <= offset < in_file + size:
            return position + _TAPE_RECORD.size + offset - in_file
        if current == file_number:
            in_file += size
        position += _TAPE_RECORD.size + TAPE_BLOCK
    raise AssertionError(f"tape file {file_number} has no byte {offset}")


class OpticalCase(MediaCase):
    kind = "optical"

    def __init__(self, variant: Variant, root: Path) -> None:
        super().__init__(variant, root)
        settings = OpticalSettings(
            disc_bytes=MEDIA_BYTES,
            label_prefix=OpticalSettings.prefix_for(POOL_NAME),
            output_dir=str(root / "images"),
            max_discs=2,
        )
        self.full_detail = f"no blank disc left after disc {settings.label_prefix}0002"
        self.pool: OpticalPool = create_optical_pool(
            root / POOL_NAME,
            settings,
            **self.creation_options(),
        )

    def open(self, passphrase: str | None) -> OpticalPool:
        return open_optical_pool(self.root / POOL_NAME, passphrase, name=POOL_NAME)

    def damage(self, ref: ChunkRef, at: int) -> None:
        _, label, number, offset = ref.location.split(":")
        image = self.root / "images" / f"{label}.iso"
        if image.exists():  # a burned disc: the stream file is one extent of the image
            path, base = image, _extent(image, file_name(int(number)))
        else:  # the open disc: its staged stream file
            path, base = self.root / POOL_NAME / "staging" / label / file_name(int(number)), 0
        raw = bytearray(path.read_bytes())
        raw[base + int(offset) + at] ^= 0x01
        path.write_bytes(bytes(raw))

    def chunk_bytes(self) -> int:
        discs = self.pool.discs
        files = [(d.label, f.number) for d in discs.closed() for f in d.files]
        if (label := discs.open_disc()) is not None:
            files += [(label, int(p.stem[1:])) for p in discs.staged_files(label)]
        return sum(_stream_chunk_bytes(discs.read_file(label, number)) for label, number in files)

    def close_media(self) -> None:
        assert self.pool.close_disc() is not None


def _extent(image: Path, name: str) -> int:
    iso = pycdlib.PyCdlib()
    iso.open(str(image))
    try:
        return int(iso.get_record(iso_path=f"/{name};1").extent_location()) * SECTOR
    finally:
        iso.close()


def _stream_chunk_bytes(stream: bytes) -> int:
    """Envelope bytes of a stream's chunk records (each: offset u64, length u32, id, envelope)."""
    return sum(
        STANDARD_RECORD.unpack_from(payload)[1]
        for tag, _, payload in parse_stream(stream)
        if tag == CHUNK_RECORD
    )


def make_case(kind: str, variant: Variant, request: pytest.FixtureRequest, root: Path) -> PoolCase:
    if kind in ("dedup", "standard", "lanfree", "dedup-v1"):
        case_type = {"lanfree": LanFreeCase, "dedup-v1": DedupV1Case}.get(kind, BlobCase)
        return case_type(
            variant, root, LocalCase(root / POOL_NAME, POOL_NAME), kind, "No space left on device"
        )
    if kind == "object":
        store = S3Case(request.getfixturevalue("moto_s3"), POOL_NAME)
        return BlobCase(variant, root, store, kind, "the S3 service answered QuotaExceeded")
    if kind == "tape":
        return TapeCase(variant, root)
    if kind == "optical":
        return OpticalCase(variant, root)
    raise AssertionError(f"no conformance case for pool kind {kind!r}")


def case_for(kind: str, variant: Variant, request: pytest.FixtureRequest, root: Path) -> Iterator[PoolCase]:
    made = make_case(kind, variant, request, root)
    try:
        yield made
    finally:
        made.close()
