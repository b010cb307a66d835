"""An encrypted pool against someone who can write its storage but does not know the passphrase
(issue 26, security checks; the threat model is in docs/format.md): a wrong passphrase, another
pool's config.json, a plain config.json, replayed old index blobs and manifests, and chunks moved
between sets, pools or places of one disk are each refused or detected by open, read or verify,
with an error naming the file or chunk and what to do; no read returns wrong bytes.

Edited, unsealed and swapped manifests and a config rolled back to format 2 are covered by
test_sealed_manifests.py."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from support.pools import CHUNK, FAST_SCRYPT_N, PASSPHRASE, TestDisk, read_back, tree_snapshot, write_disk

from bingobackup.format.errors import (
    CorruptChunkError,
    ForeignConfigError,
    FormatError,
    ManifestError,
    PassphraseRequiredError,
    WrongPassphraseError,
)
from bingobackup.format.manifest import ChunkRef, DiskManifest
from bingobackup.lifecycle.gc import collect_garbage
from bingobackup.lifecycle.verify import DiskToVerify, verify_disks
from bingobackup.pools import LocalDirBlobStore, Pool, create_pool, open_pool, upgrade_pool

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
KINDS = ["dedup", "standard"]


def new_pool(root: Path, kind: str, passphrase: str = PASSPHRASE) -> Pool:
    return create_pool(
        root,
        kind,
        chunk_size=CHUNK,
        encrypted=True,
        passphrase=passphrase,
        scrypt_n=FAST_SCRYPT_N,  # type: ignore[arg-type]
    )


def random_disk(chunks: int = 5) -> TestDisk:
    """Incompressible chunks: every envelope has the same length, so one fits another's place."""
    return TestDisk(os.urandom(chunks * CHUNK))


def backup(pool: Pool, set_id: str, disk: TestDisk, volume_id: str = "vol-a") -> DiskManifest:
    # One writer thread: chunks land in disk order, one pack per disk backup.
    return write_disk(pool.open_disk_writer(set_id, volume_id, len(disk.data)), disk, threads=1)


def verify(pool: Pool, manifests: list[DiskManifest]):  # type: ignore[no-untyped-def]
    disks = [DiskToVerify(set_id=m.set_id, volume_id=m.volume_id, indexed=m) for m in manifests]
    return verify_disks(pool, disks, threads=2)


def envelope_at(root: Path, ref: ChunkRef) -> tuple[Path, int]:
    key, _, offset = ref.location.rpartition("@")
    return root / key, int(offset)


def read_envelope(root: Path, ref: ChunkRef) -> bytes:
    path, offset = envelope_at(root, ref)
    with path.open("rb") as file:
        file.seek(offset)
        return file.read(ref.stored_size)


def write_envelope(root: Path, ref: ChunkRef, envelope: bytes) -> None:
    assert len(envelope) == ref.stored_size  # same length: only the place is wrong
    path, offset = envelope_at(root, ref)
    with path.open("r+b") as file:
        file.seek(offset)
        file.write(envelope)


# -- the passphrase and the config ---------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_a_wrong_or_missing_passphrase_reads_and_writes_nothing(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "pool"
    backup(new_pool(root, kind), "set-1", random_disk())
    before = tree_snapshot(root)

    with pytest.raises(WrongPassphraseError) as wrong:
        open_pool(root, "correct horse battery stapler")
    assert str(wrong.value).startswith("the passphrase does not open pool pool; nothing was read or written")
    assert "config.json is damaged, or the file is another pool's" in str(wrong.value)
    with pytest.raises(PassphraseRequiredError, match="pool pool is encrypted and no passphrase was given"):
        open_pool(root)
    assert tree_snapshot(root) == before


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("same_passphrase", [True, False], ids=["same-passphrase", "other-passphrase"])
def test_another_pools_config_is_refused_before_anything_is_read_or_written(
    tmp_path: Path, kind: str, same_passphrase: bool
) -> None:
    """Pool b's config.json copied over pool a's. With another passphrase it does not open;
    made with the same one it opens (it is a valid config), but fails every seal of pool a: a
    read, a backup, a verify and a garbage collection stop, saying config.json is foreign."""
    root, other = tmp_path / "pool-a", tmp_path / "pool-b"
    disk = random_disk()
    manifest = backup(new_pool(root, kind), "set-1", disk)
    other_passphrase = PASSPHRASE if same_passphrase else "another passphrase"
    backup(new_pool(other, kind, other_passphrase), "set-1", random_disk())
    own_config = (root / "config.json").read_bytes()
    shutil.copyfile(other / "config.json", root / "config.json")
    before = tree_snapshot(root)

    if not same_passphrase:
        with pytest.raises(WrongPassphraseError, match="or the file is another pool's"):
            open_pool(root, PASSPHRASE)
    # The same passphrase (or, here, pool b's): the config opens, and what it opens is refused.
    with pytest.raises(ForeignConfigError) as foreign:
        open_pool(root, other_passphrase).load_manifest("set-1", "vol-a")
    message = str(foreign.value)
    assert message.startswith(
        "pool pool-a: config.json (which names pool pool-b) does not fit the backups stored in the pool"
    )
    assert "the manifests checked (manifests/set-1/vol-a.json) are not sealed, or their chunks not" in message
    assert "Nothing was read or written; restore config.json from a copy of this pool" in message
    with pytest.raises(ForeignConfigError):
        open_pool(root, other_passphrase).open_disk_writer("set-2", "vol-a", len(disk.data))
    with pytest.raises(ForeignConfigError):
        verify(open_pool(root, other_passphrase), [manifest])
    with pytest.raises(ForeignConfigError):
        collect_garbage(open_pool(root, other_passphrase))
    assert tree_snapshot(root) == before  # no lock, pack, manifest or deletion

    (root / "config.json").write_bytes(own_config)
    pool = open_pool(root, PASSPHRASE)
    assert read_back(pool, pool.load_manifest("set-1", "vol-a")) == disk.data


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "plain"])
def test_a_pools_only_manifest_edited_is_not_taken_for_a_foreign_config(
    tmp_path: Path, encrypted: bool
) -> None:
    """The config check must not turn one altered manifest into "restore config.json": the
    manifest is refused by name, and backups into the pool go on."""
    root = tmp_path / "pool"
    pool = create_pool(
        root, "dedup", chunk_size=CHUNK, encrypted=encrypted, passphrase=PASSPHRASE if encrypted else None,
        scrypt_n=FAST_SCRYPT_N,
    )  # fmt: skip
    disk = random_disk()
    backup(pool, "set-1", disk)
    path = root / "manifests" / "set-1" / "vol-a.json"
    raw = json.loads(path.read_text())
    raw["size_bytes"] += CHUNK
    path.write_text(json.dumps(raw))

    reopened = open_pool(root, PASSPHRASE if encrypted else None)
    with pytest.raises(
        ManifestError, match=r"manifest of disk vol-a in backup set set-1 on pool pool .* fails its seal"
    ):
        reopened.load_manifest("set-1", "vol-a")
    assert read_back(reopened, backup(reopened, "set-2", disk)) == disk.data


def test_another_pools_config_on_an_unsealed_pool_is_refused_by_pool_upgrade(tmp_path: Path) -> None:
    """A format-2 pool has no seals to check a config against: its chunks are. `pool upgrade`
    would otherwise seal every manifest under the foreign key."""
    root = tmp_path / "dedup-aes"
    shutil.copytree(FIXTURES / "golden-pool-v2" / "dedup-aes", root)
    expected = json.loads((FIXTURES / "golden-pool-v2" / "expected.json").read_text())
    passphrase, set_id, volume_id = expected["passphrase"], expected["set_id"], expected["volume_id"]
    # Another pool made with the same passphrase: the format-1 golden one.
    shutil.copyfile(FIXTURES / "golden-pool-v1" / "dedup-aes" / "config.json", root / "config.json")
    before = tree_snapshot(root)

    with pytest.raises(
        ForeignConfigError, match=rf"manifests checked \(manifests/{set_id}/{volume_id}\.json\)"
    ):
        upgrade_pool(LocalDirBlobStore(root, "dedup-aes"), passphrase)
    pool = open_pool(root, passphrase)
    with pytest.raises(CorruptChunkError, match="sealed under another pool's key"):
        read_back(pool, pool.load_manifest(set_id, volume_id))
    assert tree_snapshot(root) == before


@pytest.mark.parametrize("kind", KINDS)
def test_a_plain_config_put_in_place_of_an_encrypted_one_is_refused(tmp_path: Path, kind: str) -> None:
    """Without the refusal, the next backups would be written unencrypted, for the attacker."""
    root = tmp_path / "pool"
    disk = random_disk()
    backup(new_pool(root, kind), "set-1", disk)
    backup(open_pool(root, PASSPHRASE), "set-2", disk)
    config = json.loads((root / "config.json").read_text())
    (root / "config.json").write_text(json.dumps(config | {"cipher": 0, "digest": 1, "key": None}))
    before = tree_snapshot(root)

    # As every backup opens it: with the passphrase its registration holds.
    with pytest.raises(FormatError) as refused:
        open_pool(root, PASSPHRASE)
    assert str(refused.value).startswith(
        "pool pool was opened with a passphrase, but its config.json says it is not encrypted. "
        "Nothing was read or written. If the pool was created encrypted, its config.json was replaced"
    )
    # Opened as a plain pool (no passphrase): its encrypted chunks name the config foreign.
    with pytest.raises(ForeignConfigError, match=r"config\.json does not fit the backups stored in the pool"):
        open_pool(root).open_disk_writer("set-3", "vol-a", len(disk.data))
    with pytest.raises(ForeignConfigError):
        open_pool(root).load_manifest("set-1", "vol-a")
    assert tree_snapshot(root) == before


@pytest.mark.parametrize(
    ("edit", "what"),
    [
        ({"digest": 1}, "cipher 1 (encrypted) with digest 1 (unkeyed chunk ids)"),
        ({"key": None}, "cipher 1 (encrypted) without a wrapped key"),
    ],
)
def test_a_config_edited_to_weaken_the_encryption_is_refused(
    tmp_path: Path, edit: dict[str, object], what: str
) -> None:
    """Unkeyed chunk ids would tell whoever reads the pool whether it holds some known data."""
    root = tmp_path / "pool"
    new_pool(root, "dedup")
    config = json.loads((root / "config.json").read_text())
    (root / "config.json").write_text(json.dumps(config | edit))
    with pytest.raises(FormatError) as refused:
        open_pool(root, PASSPHRASE)
    assert str(refused.value) == (
        f"pool/config.json was edited or damaged: {what}, which no bingobackup writes (an encrypted "
        "pool keys its chunk ids and wraps its key; a plain one does neither). Nothing was read or "
        "written; restore config.json from a copy of the pool"
    )


# -- replayed old files --------------------------------------------------------------------------
def test_replayed_index_blobs_and_manifest_from_before_a_repack_return_the_right_bytes(
    tmp_path: Path,
) -> None:
    """The index blobs and a manifest as they were before a garbage collection repacked and
    deleted packs, put back: the records of deleted packs are ignored (a later backup stores
    those chunks anew), the old manifest's chunks are found where the repack moved them, and
    verify finds nothing wrong."""
    root = tmp_path / "pool"
    pool = new_pool(root, "dedup")
    first = random_disk()
    gone = backup(pool, "set-1", first)
    newer = TestDisk(first.data[:CHUNK] + os.urandom(4 * CHUNK))  # shares set-1's first chunk
    kept = backup(pool, "set-2", newer)
    old_index = {path.name: path.read_bytes() for path in (root / "index").iterdir()}
    old_manifest = (root / "manifests" / "set-2" / "vol-a.json").read_bytes()
    pool.delete_set("set-1")
    report = collect_garbage(pool)
    assert report.packs_repacked == 1 and report.manifests_rewritten == 1
    old_pack = gone.chunks[0].location.rpartition("@")[0]
    assert not (root / old_pack).exists()

    for name, data in old_index.items():  # replayed
        (root / "index" / name).write_bytes(data)
    (root / "manifests" / "set-2" / "vol-a.json").write_bytes(old_manifest)

    pool = open_pool(root, PASSPHRASE)
    replayed = pool.load_manifest("set-2", "vol-a")
    assert replayed == kept  # the old copy is validly sealed: it was this pool's own
    assert read_back(pool, replayed) == newer.data
    again = backup(pool, "set-3", first)
    assert all(old_pack not in ref.location for ref in again.chunks)  # nothing named the deleted pack
    assert read_back(open_pool(root, PASSPHRASE), again) == first.data
    assert verify(open_pool(root, PASSPHRASE), [replayed, again]).ok


# -- chunks moved --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("move", ["from-another-set", "to-another-place-of-the-disk", "from-another-pool"])
def test_a_chunk_moved_is_detected_on_read_and_by_verify(tmp_path: Path, kind: str, move: str) -> None:
    """An envelope copied over another of the same length: it is authentic (or authentic in
    another pool), but not the chunk the sealed manifest names there. The read fails naming
    the chunk and its place, verify reports exactly the places hit, and the rest reads back."""
    root = tmp_path / "pool"
    pool = new_pool(root, kind)
    disk, other_disk = random_disk(), random_disk()
    victim = backup(pool, "set-1", disk)
    other = backup(pool, "set-2", other_disk)
    first, second = victim.chunks[0], victim.chunks[1]
    if move == "from-another-set":
        write_envelope(root, first, read_envelope(root, other.chunks[0]))
        hit, reason = [first], f"its content has digest {other.chunks[0].digest}"
    elif move == "to-another-place-of-the-disk":
        one, two = read_envelope(root, first), read_envelope(root, second)
        write_envelope(root, first, two)
        write_envelope(root, second, one)
        hit, reason = [first, second], "its content has digest "
    else:  # the same disk backed up into another pool made with the same passphrase
        foreign_root = tmp_path / "other-pool"
        foreign = backup(new_pool(foreign_root, kind), "set-1", disk)
        assert foreign.chunks[0].stored_size == first.stored_size
        write_envelope(root, first, read_envelope(foreign_root, foreign.chunks[0]))
        hit, reason = (
            [first],
            "authentication failed (the bytes were altered, or sealed under another pool's key)",
        )

    pool = open_pool(root, PASSPHRASE)
    with pytest.raises(CorruptChunkError) as damaged:
        read_back(pool, pool.load_manifest("set-1", "vol-a"))
    message = str(damaged.value)
    assert message.startswith(f"chunk {first.digest} at pool:{first.location} is damaged: {reason}")
    assert "restore from another copy or run a new full backup" in message

    report = verify(open_pool(root, PASSPHRASE), [victim, other])
    assert sorted((d.kind, d.set_id, d.offset, d.digest, d.location) for d in report.damage) == [
        ("chunk", "set-1", ref.offset, ref.digest, ref.location) for ref in hit
    ]
    assert all(d.reason.startswith(reason) for d in report.damage)
    assert report.damaged_sets == ["set-1"]
    for ref in victim.chunks[len(hit) :]:  # the places not hit read back right
        assert pool.read_chunk(ref) == disk.data[ref.offset : ref.offset + ref.length]
    assert read_back(pool, other) == other_disk.data


def test_a_standard_pack_file_copied_over_another_sets_never_reads_as_that_set(tmp_path: Path) -> None:
    """A whole pack file moved: the sets' layouts match place for place, so only the chunk ids
    of the sealed manifest tell them apart; every chunk whose content differs is refused and a
    chunk both disks share reads back right (its id is its content)."""
    root = tmp_path / "pool"
    pool = new_pool(root, "standard")
    shared = os.urandom(CHUNK)
    disk = TestDisk(shared + os.urandom(3 * CHUNK))
    other_disk = TestDisk(shared + os.urandom(3 * CHUNK))
    victim = backup(pool, "set-1", disk)
    backup(pool, "set-2", other_disk)
    shutil.copyfile(root / "packs" / "set-2" / "vol-a.pack", root / "packs" / "set-1" / "vol-a.pack")

    report = verify(open_pool(root, PASSPHRASE), [victim])
    assert sorted(d.offset or 0 for d in report.damage) == [CHUNK, 2 * CHUNK, 3 * CHUNK]
    assert open_pool(root, PASSPHRASE).read_chunk(victim.chunks[0]) == shared
