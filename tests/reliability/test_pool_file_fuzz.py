"""Damaged pool files (hypothesis): a byte flipped, the file cut short, or two ranges swapped
in a pack, an index blob, a sealed manifest or the pool's config.

Whatever the damage: no read returns other bytes than were backed up; a read that fails names
the damaged object; `verify` reports exactly the chunks whose stored bytes changed (and the
manifest, when a manifest was hit), and nothing else. `FUZZ_EXAMPLES=N` runs N random
examples instead of the suite's derandomized ones.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.pools import store_disk

from bingobackup.errors import BingoBackupError
from bingobackup.format.manifest import DiskManifest
from bingobackup.lifecycle.verify import DiskToVerify, verify_disks
from bingobackup.pools import LocalDirBlobStore, create_pool_in, open_pool_in
from bingobackup.pools.writer import ZERO_LOCATION

CHUNK = 64 * 1024
PASSPHRASE = "fuzzed pool passphrase"
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "30")),
    derandomize=not os.environ.get("FUZZ_EXAMPLES"),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Golden:
    """A pristine pool: two sets sharing chunks, and what each disk holds."""

    directory: Path
    disks: dict[tuple[str, str], bytes]
    manifests: dict[tuple[str, str], DiskManifest]
    files: list[str]  # pool files a fuzz may damage, relative to the pool directory


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> Golden:
    directory = tmp_path_factory.mktemp("golden-pool")
    pool = create_pool_in(
        LocalDirBlobStore(directory, "pool"), "dedup", chunk_size=CHUNK, encrypted=True, passphrase=PASSPHRASE
    )
    a, b = os.urandom(4 * CHUNK), os.urandom(3 * CHUNK)
    disks = {
        ("set-1", "vol-a"): a,
        ("set-1", "vol-b"): b + bytes(CHUNK),  # a zero chunk: stored as nothing
        ("set-2", "vol-a"): a[: 2 * CHUNK] + os.urandom(2 * CHUNK),  # half shared with set-1
    }
    manifests = {key: store_disk(pool, *key, data, CHUNK) for key, data in disks.items()}
    files = sorted(
        str(p.relative_to(directory))
        for p in directory.rglob("*")
        if p.is_file() and p.parts[len(directory.parts)] in ("data", "index", "manifests", "config.json")
    )
    assert {f.split("/")[0] for f in files} == {"data", "index", "manifests", "config.json"}
    return Golden(directory, disks, manifests, files)


@st.composite
def damage(draw: st.DrawFn, files: list[str], sizes: dict[str, int]) -> tuple[str, str, int, int, int]:
    """(file, kind, at, length, other): flip the byte at `at`, truncate to `at`, or swap
    `length` bytes at `at` with those at `other`."""
    name = draw(st.sampled_from(files))
    size = sizes[name]
    kind = draw(st.sampled_from(["flip", "truncate", "swap"]))
    at = draw(st.integers(0, size - 1))
    length = draw(st.integers(1, max(1, min(4096, size // 4))))
    other = draw(st.integers(0, max(0, size - length)))
    return name, kind, at, length, other


def _damaged(original: bytes, kind: str, at: int, length: int, other: int) -> bytes:
    data = bytearray(original)
    if kind == "flip":
        data[at] ^= 0xFF
    elif kind == "truncate":
        del data[at:]
    else:
        at = min(at, len(data) - length)
        first, second = bytes(data[at : at + length]), bytes(data[other : other + length])
        data[other : other + length] = first
        data[at : at + length] = second
    return bytes(data)


def _changed(before: bytes, after: bytes) -> set[int]:
    """Byte positions of `before` whose value is gone (changed, or cut off)."""
    changed = {i for i in range(min(len(before), len(after))) if before[i] != after[i]}
    return changed | set(range(len(after), len(before)))


def _span(location: str) -> tuple[str, int]:
    key, _, offset = location.partition("@")
    return key, int(offset or 0)


def test_damage_is_found_where_it_is_and_nowhere_else(
    golden: Golden, tmp_path_factory: pytest.TempPathFactory
) -> None:
    sizes = {name: (golden.directory / name).stat().st_size for name in golden.files}

    @FUZZ
    @given(damage(golden.files, sizes))
    def check(case: tuple[str, str, int, int, int]) -> None:
        name, kind, at, length, other = case
        directory = tmp_path_factory.mktemp("damaged")
        shutil.rmtree(directory)
        shutil.copytree(golden.directory, directory)
        target = directory / name
        before = target.read_bytes()
        after = _damaged(before, kind, at, length, other)
        target.write_bytes(after)
        changed = _changed(before, after)
        try:
            _check_damaged_pool(golden, directory, name, changed)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    check()


def _check_damaged_pool(golden: Golden, directory: Path, name: str, changed: set[int]) -> None:
    try:
        pool = open_pool_in(LocalDirBlobStore(directory, "pool"), passphrase=PASSPHRASE)
    except BingoBackupError as error:
        assert name == "config.json" and changed, f"{name} damaged, the pool does not open: {error}"
        assert "config" in str(error), str(error)
        return
    # Which chunks' stored bytes changed: those a pack damage overlapped.
    damaged_locations = {
        ref.location
        for manifest in golden.manifests.values()
        for ref in manifest.chunks
        if ref.location != ZERO_LOCATION
        and _span(ref.location)[0] == name
        and any(_span(ref.location)[1] <= i < _span(ref.location)[1] + ref.stored_size for i in changed)
    }
    damaged_manifest = name.startswith("manifests/") and changed

    # Reads: the right bytes, or an error naming the object.
    for (set_id, volume), data in golden.disks.items():
        for ref in golden.manifests[(set_id, volume)].chunks:
            if ref.location == ZERO_LOCATION:
                continue
            try:
                plaintext = pool.read_chunk(ref)
            except BingoBackupError as error:
                assert ref.location in damaged_locations, f"{ref.location} unreadable: {error}"
                assert _span(ref.location)[0] in str(error), f"the error names no object: {error}"
                continue
            assert plaintext == data[ref.offset : ref.offset + ref.length], f"{ref.location} read other bytes"
        try:
            pool.load_manifest(set_id, volume)
        except BingoBackupError as error:
            assert damaged_manifest and name == f"manifests/{set_id}/{volume}.json", str(error)
            assert name.rpartition("/")[2].removesuffix(".json") in str(error) or name in str(error), str(
                error
            )

    # verify: exactly the damaged chunks (once per reference) and the damaged manifest.
    disks = [DiskToVerify(set_id=s, volume_id=v, indexed=m) for (s, v), m in golden.manifests.items()]
    report = verify_disks(pool, disks, threads=2)
    found_chunks = {d.location for d in report.damage if d.kind == "chunk"}
    found_manifests = {(d.set_id, d.volume_id) for d in report.damage if d.kind == "manifest"}
    assert found_chunks == damaged_locations, report.damage
    expected_manifests = (
        {tuple(name.removeprefix("manifests/").removesuffix(".json").split("/"))}
        if damaged_manifest
        else set()
    )
    assert found_manifests == expected_manifests, report.damage
    assert {d.kind for d in report.damage} <= {"chunk", "manifest"}, report.damage


def test_a_damaged_wrapped_key_is_named_with_the_config_not_only_as_a_wrong_passphrase(
    golden: Golden, tmp_path: Path
) -> None:
    """Found by the random fuzz (`make reliability`): two bytes of the config's wrapped key
    swapped read as a wrong passphrase, which sent the operator after the passphrase only."""
    directory = tmp_path / "pool"
    shutil.copytree(golden.directory, directory)
    config = json.loads((directory / "config.json").read_text())
    ciphertext = config["key"]["ciphertext"]
    config["key"]["ciphertext"] = ciphertext[1] + ciphertext[0] + ciphertext[2:]
    (directory / "config.json").write_text(json.dumps(config))

    with pytest.raises(BingoBackupError) as refused:
        open_pool_in(LocalDirBlobStore(directory, "pool"), passphrase=PASSPHRASE)

    assert "does not open pool pool" in str(refused.value)
    assert "config.json is damaged" in str(refused.value)
