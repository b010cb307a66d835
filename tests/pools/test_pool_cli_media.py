"""Through the real CLI and the session's Prefect server: `catalog query` and `export-disk` by
the NAME of an object pool (its keys come from the registration) and of an optical pool;
`pool create --kind optical`, `pool close-disc`, `pool scan` and `pool stats` counting media."""

from __future__ import annotations

import hashlib
import sys
import uuid
from pathlib import Path

import pytest
from support.catalog import record_set
from support.cli import invoke
from support.pools import make_disk, write_disk
from support.s3 import new_bucket

from bingobackup.cli.prefect_server import ServerInfo
from bingobackup.format.manifest import DiskManifest
from bingobackup.resources.pools import open_registered_pool


def exported_sha(pool: str, manifest: DiskManifest, output: Path) -> str:
    out = invoke(
        "export-disk", "--pool", pool, "--set", manifest.set_id, "--volume", manifest.volume_id,
        "--output", str(output), "--sha256",
    )  # fmt: skip
    return out.split("sha256 ")[1].split()[0]


def test_object_and_optical_pools_by_name(
    prefect_server: ServerInfo, moto_s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.blocks import PrefectRegistryStore

    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BINGOBACKUP_S3_SECRET_ACCESS_KEY", "testing")
    suffix = uuid.uuid4().hex[:6]
    disk = make_disk()

    obj = f"obj-{suffix}"
    invoke(
        "pool", "create", "--name", obj, "--kind", "object", "--bucket", new_bucket(moto_s3),
        "--prefix", "pools/obj", "--endpoint", moto_s3, "--access-key-id", "testing", "--chunk-size", "64KiB",
    )  # fmt: skip
    registration = PrefectRegistryStore().get_pool(obj)
    assert registration is not None
    manifest = write_disk(
        open_registered_pool(registration).open_disk_writer("set-o", "vol-a", len(disk.data)), disk
    )
    record_set(registration, manifest)
    listed = invoke(
        "catalog", "query", "SELECT set_id, volume_id FROM disk_backups", "--pool", obj, "--format", "csv"
    )
    assert "set-o,vol-a" in listed
    assert exported_sha(obj, manifest, tmp_path / "obj.raw") == disk.sha256

    opt = f"opt-{suffix}"
    burned = tmp_path / "burned"
    burned.mkdir()
    burner = tmp_path / "burn.py"
    burner.write_text(f"import shutil, sys\nshutil.copy(sys.argv[1], {str(burned)!r})\n")
    out = invoke(
        "pool", "create", "--name", opt, "--kind", "optical", "--path", str(tmp_path / "optical"),
        "--disc-size", str(1 << 20), "--max-discs", "4", "--chunk-size", "64KiB",
        "--burn-command", f"{sys.executable} {burner}",
    )  # fmt: skip
    assert "(optical, standard)" in out
    optical = PrefectRegistryStore().get_pool(opt)
    assert optical is not None
    manifest = write_disk(
        open_registered_pool(optical).open_disk_writer("set-p", "vol-b", len(disk.data)), disk
    )
    record_set(optical, manifest)
    label = f"OPT_{suffix.upper()}_0001"
    assert f"disc {label} closed" in invoke("pool", "close-disc", opt)
    assert (burned / f"{label}.iso").is_file()
    stats = invoke("pool", "stats", opt)
    assert "1 disc(s), 3 with room" in stats, stats
    assert exported_sha(opt, manifest, tmp_path / "opt.raw") == disk.sha256
    for manifest_file in (tmp_path / "optical" / "manifests").rglob("*.json"):
        manifest_file.unlink()  # the pool home's manifests are lost; the disc images remain
    assert "1 disk backup(s) found on the disc images" in invoke("pool", "scan", opt)
    assert hashlib.sha256((tmp_path / "opt.raw").read_bytes()).hexdigest() == disk.sha256
