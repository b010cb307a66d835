"""Where each chunk of a disk belongs is bound by the pool's sealed manifest (format version 3):
export follows the manifest, the catalog is only an index checked against it, and a manifest
changed behind the pool's back is refused. Old pools are moved forward by `pool upgrade`.

Issue 28, item 2: swapping the `offset` of two rows of a disk in the catalog's chunks Parquet
made `export-disk --sha256` write a different image and exit 0, even on an encrypted pool."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.catalog import record_set
from support.pools import CHUNK, FAST_SCRYPT_N, PASSPHRASE, make_disk, read_back, write_disk
from support.s3 import new_bucket, s3_settings
from typer.testing import CliRunner

from bingobackup.cli.main import app
from bingobackup.format.constants import FORMAT_VERSION
from bingobackup.format.errors import FormatError, ManifestError
from bingobackup.format.manifest import DiskManifest
from bingobackup.pools import Pool, PoolError, create_pool, open_pool, upgrade_pool
from bingobackup.resources.models import PoolRegistration, User
from bingobackup.resources.pools import create_registered_pool, pool_store
from bingobackup.resources.store import InMemoryRegistryStore

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
runner = CliRunner()


def backed_up(root: Path, kind: str, encrypted: bool) -> tuple[Pool, DiskManifest, str]:
    """A pool directory holding one disk backup with its catalog rows, as the backup flow leaves it."""
    pool = create_pool(
        root,
        kind,  # type: ignore[arg-type]
        chunk_size=CHUNK,
        encrypted=encrypted,
        passphrase=PASSPHRASE if encrypted else None,
        scrypt_n=FAST_SCRYPT_N,
    )
    disk = make_disk()
    manifest = write_disk(pool.open_disk_writer("set-1", "vol-a", len(disk.data)), disk)
    record_set(PoolRegistration(name=root.name, kind=kind, location=str(root)), manifest)
    return pool, manifest, disk.sha256


def export(root: Path, output: Path, encrypted: bool) -> tuple[int, str, BaseException | None]:
    args = [
        "export-disk",
        "--pool",
        str(root),
        "--set",
        "set-1",
        "--volume",
        "vol-a",
        "--output",
        str(output),
    ]
    env = {"BINGOBACKUP_POOL_PASSPHRASE": PASSPHRASE if encrypted else ""}
    result = runner.invoke(app, [*args, "--sha256"], env=env)
    return result.exit_code, result.output, result.exception


def swap_catalog_offsets(root: Path, first: int, second: int) -> None:
    """Swaps the `offset` of two chunk rows of vol-a in the catalog's Parquet, in place."""
    (path,) = (root / "catalog" / "chunks").rglob("*.parquet")
    table = pq.read_table(path)
    offsets = table.column("offset").to_pylist()
    volumes = table.column("volume_id").to_pylist()
    i, j = (
        n
        for n, (o, v) in enumerate(zip(offsets, volumes, strict=True))
        if v == "vol-a" and o in (first, second)
    )
    offsets[i], offsets[j] = offsets[j], offsets[i]
    column = table.schema.get_field_index("offset")
    field = table.schema.field(column)
    swapped = table.set_column(column, field, pa.array(offsets, field.type))
    pq.write_table(swapped, path)


def manifest_file(root: Path, volume: str = "vol-a") -> Path:
    return root / "manifests" / "set-1" / f"{volume}.json"


@pytest.mark.parametrize(("kind", "encrypted"), [("dedup", True), ("standard", False)])
def test_swapped_catalog_offsets_fail_export_naming_disk_and_offset(
    tmp_path: Path, kind: str, encrypted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path / "home"))
    root = tmp_path / "pool"
    _, manifest, sha256 = backed_up(root, kind, encrypted)
    code, out, _ = export(root, tmp_path / "good.raw", encrypted)
    assert code == 0 and f"sha256 {sha256}" in out  # the untouched catalog exports byte-exact

    first, second = manifest.chunks[0].offset, manifest.chunks[1].offset  # chunks of different content
    assert manifest.chunks[0].digest != manifest.chunks[1].digest
    swap_catalog_offsets(root, first, second)
    code, _, error = export(root, tmp_path / "swapped.raw", encrypted)

    assert code != 0 and isinstance(error, ManifestError)
    assert str(error).startswith(
        f"VM web disk vol-a (set set-1): the catalog of pool pool disagrees with the pool's sealed "
        f"manifest at disk offset {first}: the catalog has chunk {manifest.chunks[1].digest}"
    )
    assert "Nothing was written" in str(error) and "catalog rebuild --pool pool" in str(error)
    assert not (tmp_path / "swapped.raw").exists() and list(tmp_path.glob(".swapped.raw*")) == []


@pytest.mark.parametrize("encrypted", [True, False])
def test_a_changed_manifest_is_refused(tmp_path: Path, encrypted: bool) -> None:
    root = tmp_path / "pool"
    pool = create_pool(
        root, "standard", chunk_size=CHUNK, encrypted=encrypted, passphrase=PASSPHRASE if encrypted else None,
        scrypt_n=FAST_SCRYPT_N,
    )  # fmt: skip
    disk = make_disk()
    write_disk(pool.open_disk_writer("set-1", "vol-a", len(disk.data)), disk)
    write_disk(pool.open_disk_writer("set-1", "vol-b", len(disk.data)), disk)
    sealed = manifest_file(root).read_bytes()
    reopen = lambda: open_pool(root, PASSPHRASE if encrypted else None)  # noqa: E731
    assert (
        hashlib.sha256(read_back(reopen(), reopen().load_manifest("set-1", "vol-a"))).hexdigest()
        == disk.sha256
    )

    # Two chunks change places in the manifest itself; the seal is kept as it was.
    raw = json.loads(sealed)
    chunks = raw["chunks"]
    chunks[0]["offset"], chunks[1]["offset"] = chunks[1]["offset"], chunks[0]["offset"]
    manifest_file(root).write_text(json.dumps(raw))
    with pytest.raises(
        ManifestError, match=r"manifest of disk vol-a in backup set set-1 on pool pool .* fails its seal"
    ):
        reopen().load_manifest("set-1", "vol-a")

    # Without its seal, in a pool whose format seals every manifest.
    del raw["seal"]
    manifest_file(root).write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match=r"disk vol-a in backup set set-1 .* has no seal"):
        reopen().load_manifest("set-1", "vol-a")

    # Another disk's (validly sealed) manifest copied over this one.
    manifest_file(root).write_bytes(manifest_file(root, "vol-b").read_bytes())
    with pytest.raises(
        ManifestError, match=r"stored as disk vol-a of backup set set-1 .* describes disk vol-b"
    ):
        reopen().load_manifest("set-1", "vol-a")

    if encrypted:  # a seal recomputed without the pool key does not pass either
        import blake3

        from bingobackup.format.constants import SEAL_LABEL
        from bingobackup.format.manifest import canonical_json

        forged = DiskManifest.model_validate(json.loads(sealed) | {"seal": None})
        body = forged.model_copy(update={"chunks": forged.chunks[::-1]})
        data = SEAL_LABEL + reopen().config.pool_id.encode() + b"\x00" + canonical_json(body)
        manifest_file(root).write_text(
            json.dumps(body.model_dump(mode="json") | {"seal": blake3.blake3(data).hexdigest()})
        )
        with pytest.raises(ManifestError, match="fails its seal check"):
            reopen().load_manifest("set-1", "vol-a")

    manifest_file(root).write_bytes(sealed)
    assert reopen().load_manifest("set-1", "vol-a").chunks[0].offset == 0


def test_an_encrypted_pool_config_edited_back_to_version_2_does_not_open(tmp_path: Path) -> None:
    root = tmp_path / "pool"
    create_pool(
        root, "dedup", chunk_size=CHUNK, encrypted=True, passphrase=PASSPHRASE, scrypt_n=FAST_SCRYPT_N
    )
    config = json.loads((root / "config.json").read_text())
    (root / "config.json").write_text(json.dumps(config | {"format_version": 2}))
    with pytest.raises(
        FormatError, match="says format version 2, but its key was wrapped by format version 3"
    ):
        open_pool(root, PASSPHRASE)
    with pytest.raises(FormatError, match="does not open pool"):  # a wrong passphrase is still just that
        open_pool(root, "not it")


@pytest.mark.parametrize(("version", "name"), [(1, "dedup-aes"), (2, "dedup-aes"), (2, "standard-plain")])
def test_pool_upgrade_seals_an_old_pool_and_keeps_its_bytes(
    tmp_path: Path, version: int, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path / "home"))
    golden = FIXTURES / f"golden-pool-v{version}"
    expected = json.loads((golden / "expected.json").read_text())
    root = tmp_path / name
    shutil.copytree(golden / name, root)
    passphrase = expected["passphrase"] if expected["pools"][name]["encrypted"] else None
    env = {"BINGOBACKUP_POOL_PASSPHRASE": passphrase or ""}

    result = runner.invoke(app, ["pool", "upgrade", str(root)], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"format version {version} -> {FORMAT_VERSION}, 1 manifest(s) sealed" in result.output
    again = runner.invoke(app, ["pool", "upgrade", str(root)], env=env, catch_exceptions=False)
    assert f"already has format version {FORMAT_VERSION}" in again.output

    pool = open_pool(root, passphrase)
    assert pool.config.format_version == FORMAT_VERSION
    manifest = pool.load_manifest(expected["set_id"], expected["volume_id"])
    assert hashlib.sha256(read_back(pool, manifest)).hexdigest() == expected["sha256"]
    path = root / "manifests" / expected["set_id"] / f"{expected['volume_id']}.json"
    raw = json.loads(path.read_text())
    raw["chunks"][0]["offset"], raw["chunks"][1]["offset"] = (
        raw["chunks"][1]["offset"],
        raw["chunks"][0]["offset"],
    )
    path.write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match="fails its seal check"):
        pool.load_manifest(expected["set_id"], expected["volume_id"])


def test_pool_upgrade_refuses_write_once_object_storage(moto_s3: str) -> None:
    registration = create_registered_pool(
        InMemoryRegistryStore(), User(name="root", role="admin"), name="obj-old", kind="object",
        s3=s3_settings(moto_s3, new_bucket(moto_s3)), chunk_size=CHUNK,
    )  # fmt: skip
    store = pool_store(registration)
    config = json.loads(store.get("config.json"))
    store.delete("config.json")
    store.put("config.json", json.dumps(config | {"format_version": 2}).encode())  # as version 2 made it
    with pytest.raises(PoolError, match=r"write-once storage.*stays at format version 2: readable"):
        upgrade_pool(store)
    assert json.loads(store.get("config.json"))["format_version"] == 2
