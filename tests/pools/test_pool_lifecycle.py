"""Creating, opening, rekeying and pruning pools; the mistakes an operator or caller can make."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.pools import CHUNK, FAST_SCRYPT_N, PASSPHRASE, Variant, make_disk, read_back, write_disk

from bingobackup.format.constants import FORMAT_VERSION
from bingobackup.format.errors import FormatError, UnsupportedFormatError, WrongPassphraseError
from bingobackup.lifecycle.gc import collect_garbage
from bingobackup.pools import (
    Pool,
    PoolError,
    PoolExistsError,
    PoolNotFoundError,
    change_passphrase,
    create_pool,
    open_pool,
    upgrade_pool,
)
from bingobackup.pools.dedup import DedupPool


def make(path: Path, kind: str = "dedup", encrypted: bool = True) -> Pool:
    return create_pool(
        path,
        kind,  # type: ignore[arg-type]
        chunk_size=CHUNK,
        encrypted=encrypted,
        passphrase=PASSPHRASE if encrypted else None,
        scrypt_n=FAST_SCRYPT_N,
    )


def test_encrypted_pools_key_their_chunk_ids(tmp_path: Path) -> None:
    data = make_disk().data[:CHUNK]
    one, two = make(tmp_path / "one"), make(tmp_path / "two")
    plain_one, plain_two = make(tmp_path / "p1", encrypted=False), make(tmp_path / "p2", encrypted=False)
    assert one.chunk_digest(data) != two.chunk_digest(data)  # no shared "known data" fingerprint
    assert plain_one.chunk_digest(data) == plain_two.chunk_digest(data)
    assert one.chunk_digest(data) not in (plain_one.chunk_digest(data),)


def test_change_passphrase_rewraps_without_touching_data(tmp_path: Path) -> None:
    pool = make(tmp_path / "pool")
    disk = make_disk()
    write_disk(pool.open_disk_writer("set-1", "vol-a", len(disk.data)), disk)
    chunk_files = {p: p.read_bytes() for p in (tmp_path / "pool" / "chunks").rglob("*") if p.is_file()}

    with pytest.raises(WrongPassphraseError):
        change_passphrase(tmp_path / "pool", "wrong", "new secret")
    change_passphrase(tmp_path / "pool", PASSPHRASE, "new secret")

    with pytest.raises(WrongPassphraseError):
        open_pool(tmp_path / "pool", PASSPHRASE)
    reopened = open_pool(tmp_path / "pool", "new secret")
    assert read_back(reopened, reopened.load_manifest("set-1", "vol-a")) == disk.data
    assert {p: p.read_bytes() for p in chunk_files} == chunk_files


def test_create_and_open_refuse_what_is_not_a_fresh_or_real_pool(tmp_path: Path) -> None:
    make(tmp_path / "pool", encrypted=False)
    with pytest.raises(PoolExistsError, match="already holds a pool"):
        make(tmp_path / "pool", encrypted=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PoolNotFoundError, match="is not a bingobackup pool"):
        open_pool(tmp_path / "empty")
    with pytest.raises(PoolNotFoundError, match="does not exist"):
        open_pool(tmp_path / "missing")
    with pytest.raises(ValueError, match="power of two between"):
        create_pool(tmp_path / "odd", "dedup", chunk_size=3 * CHUNK)
    with pytest.raises(ValueError, match="not available yet"):
        create_pool(tmp_path / "tape", "tape")  # type: ignore[arg-type]


def test_a_newer_or_damaged_config_is_refused_clearly(tmp_path: Path) -> None:
    make(tmp_path / "pool", encrypted=False)
    config_path = tmp_path / "pool" / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps(config | {"format_version": FORMAT_VERSION + 1}))
    with pytest.raises(
        UnsupportedFormatError, match=rf"format version {FORMAT_VERSION + 1}.*upgrade bingobackup"
    ):
        open_pool(tmp_path / "pool")
    config_path.write_text(json.dumps(config | {"magic": "SOMETHING-ELSE"}))
    with pytest.raises(FormatError, match="not a bingobackup pool config"):
        open_pool(tmp_path / "pool")
    config_path.write_text(json.dumps(config | {"cipher": 99}))
    with pytest.raises(FormatError, match="is damaged"):
        open_pool(tmp_path / "pool")


@pytest.mark.parametrize("kind", ["dedup", "standard"])
def test_delete_set_and_collect_garbage(tmp_path: Path, kind: str) -> None:
    pool = make(tmp_path / "pool", kind=kind, encrypted=False)
    disk, other = make_disk(), make_disk()  # both hold the same text chunk
    write_disk(pool.open_disk_writer("set-1", "vol-a", len(disk.data)), disk)
    kept = write_disk(pool.open_disk_writer("set-2", "vol-a", len(other.data)), other)

    assert pool.delete_set("set-1") >= 1
    assert sorted(pool.list_manifests()) == [("set-2", "vol-a")]
    if isinstance(pool, DedupPool):
        sizes = {i.key: i.size for i in pool.store.list("data/")}
        used = {ref.location.partition("@")[0] for ref in kept.chunks}
        # A pack of set-1 that also holds the text chunk set-2 uses is kept whole; set-1's
        # other packs (its writer threads may have filled two) go.
        assert collect_garbage(pool, repack=False).bytes_freed == sum(
            size for key, size in sizes.items() if key not in used
        )
        assert {i.key for i in pool.store.list("data/")} == used
        assert read_back(pool, kept) == other.data
        pool.delete_set("set-2")
        assert collect_garbage(pool, repack=False).bytes_freed == sum(sizes[key] for key in used)
        assert list(pool.store.list("data/")) == [] and collect_garbage(pool, repack=False).bytes_freed == 0
        return
    assert [i.key for i in pool.store.list("packs/")] == ["packs/set-2/vol-a.pack"]
    assert read_back(pool, pool.load_manifest("set-2", "vol-a")) == other.data
    assert read_back(pool, kept) == other.data
    with pytest.raises(PoolError, match="holds no backup of volume vol-a in set set-1"):
        pool.load_manifest("set-1", "vol-a")


def test_collect_garbage_frees_the_chunk_files_of_a_version_1_pool(tmp_path: Path) -> None:
    pool = make(tmp_path / "pool", encrypted=False)
    config = pool.config.model_copy(update={"format_version": 1})
    (tmp_path / "pool" / "config.json").write_bytes(config.to_json())  # as version 1 made it
    pool = open_pool(tmp_path / "pool")
    disk, other = make_disk(), make_disk()
    write_disk(pool.open_disk_writer("set-1", "vol-a", len(disk.data)), disk)
    kept = write_disk(pool.open_disk_writer("set-2", "vol-a", len(other.data)), other)
    assert list(pool.store.list("data/")) == [] and len(list(pool.store.list("chunks/"))) == 7
    pool.delete_set("set-1")
    # A bingobackup of version 1 writes without a pool lock: collecting needs the upgrade first.
    assert isinstance(pool, DedupPool)
    with pytest.raises(
        PoolError, match=r"format version 1.*Nothing was deleted; run `bingobackup pool upgrade"
    ):
        collect_garbage(pool, repack=False)
    assert len(list(pool.store.list("chunks/"))) == 7
    upgrade_pool(pool.store)
    pool = open_pool(tmp_path / "pool")
    assert isinstance(pool, DedupPool) and collect_garbage(pool, repack=False).bytes_freed > 0
    assert len(list(pool.store.list("chunks/"))) == 4  # set-1's own three chunks went
    assert read_back(pool, kept) == other.data


def test_writer_refuses_misuse_with_clear_messages(variant: Variant, pool: Pool) -> None:
    writer = pool.open_disk_writer("set-1", "vol-a", 2 * CHUNK + 10)
    with pytest.raises(ValueError, match="not a multiple of the pool's chunk size"):
        writer.put_chunk(100, b"x" * CHUNK)
    with pytest.raises(ValueError, match="expected 10"):
        writer.put_chunk(2 * CHUNK, b"x" * 11)
    with pytest.raises(ValueError, match="dedup mode"):
        writer.put_chunk(0, b"x" * CHUNK, mode="both")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"set id '\.\./x'"):
        pool.open_disk_writer("../x", "vol-a", CHUNK)
    writer.commit()
    with pytest.raises(ValueError, match="is committed; open a new one"):
        writer.put_chunk(0, b"x" * CHUNK)
    if variant.kind == "standard":
        with pytest.raises(PoolError, match="does not deduplicate"):
            pool.open_disk_writer("set-2", "vol-a", CHUNK).add_known(0, CHUNK, "00" * 32)


def test_secrets_never_show(tmp_path: Path) -> None:
    pool = make(tmp_path / "pool")
    shown = repr(pool) + repr(pool.codec.digester) + str(pool.config.model_dump())
    assert PASSPHRASE not in shown
    assert pool.codec.digester._key is not None and pool.codec.digester._key.hex() not in shown
    assert repr(pool) == "DedupPool('pool', encrypted=True)"


def test_a_pool_unlocked_twice_in_one_process_pays_scrypt_once_and_a_wrong_passphrase_still_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`backup run` unlocks its pool in the background while the run is created, and the run
    opens it again: the second open (even one waiting on the first, from another thread) takes
    the same key-encryption key instead of a second scrypt. The memo is per passphrase: a
    wrong one is still refused, a right one after it still opens."""
    import threading

    from bingobackup.format import crypto

    make(tmp_path / "pool")
    derivations: list[int] = []
    real_scrypt = crypto.Scrypt

    def counting_scrypt(**kwargs: int | bytes) -> object:
        derivations.append(1)
        return real_scrypt(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(crypto, "Scrypt", counting_scrypt)
    monkeypatch.setattr(crypto, "_kek_memo", type(crypto._kek_memo)())
    opened: list[Pool] = []
    threads = [
        threading.Thread(target=lambda: opened.append(open_pool(tmp_path / "pool", PASSPHRASE)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(opened) == 3 and len(derivations) == 1

    with pytest.raises(WrongPassphraseError):
        open_pool(tmp_path / "pool", "not the passphrase")
    with pytest.raises(WrongPassphraseError):
        open_pool(tmp_path / "pool", "not the passphrase")  # memoised, still wrong
    assert len(derivations) == 2
    disk = make_disk()
    reopened = open_pool(tmp_path / "pool", PASSPHRASE)
    write_disk(reopened.open_disk_writer("set-1", "vol-a", len(disk.data)), disk)
    assert (
        read_back(open_pool(tmp_path / "pool", PASSPHRASE), reopened.load_manifest("set-1", "vol-a"))
        == disk.data
    )
