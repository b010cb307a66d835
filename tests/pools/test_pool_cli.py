"""`bingobackup pool create --kind object|lanfree`, `pool list`, `pool stats` through the real CLI
and the session's Prefect server: the S3 secret is kept in the pool block, never printed."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from support.cli import invoke
from support.pools import make_disk, write_disk
from support.s3 import new_bucket

from bingobackup.cli.prefect_server import ServerInfo
from bingobackup.resources.errors import RegistrationError
from bingobackup.resources.pools import open_registered_pool

SECRET = "s3-secret-never-printed"


def test_object_and_lanfree_pools_through_the_cli(
    prefect_server: ServerInfo, moto_s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks.blocks import PrefectRegistryStore

    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BINGOBACKUP_S3_SECRET_ACCESS_KEY", SECRET)
    suffix = uuid.uuid4().hex[:6]
    bucket = new_bucket(moto_s3)
    out = invoke(
        "pool", "create", "--name", f"obj-{suffix}", "--kind", "object", "--bucket", bucket,
        "--prefix", "pools/obj", "--endpoint", moto_s3, "--access-key-id", "testing",
        "--chunk-size", "64KiB", "--format", "standard",
    )  # fmt: skip
    assert f"created at s3://{bucket}/pools/obj" in out and "(object, standard)" in out
    out = invoke(
        "pool", "create", "--name", f"lun-{suffix}", "--kind", "lanfree", "--path", str(tmp_path / "lun"),
        "--backup-host", "i-AAAA0001", "--chunk-size", "64KiB",
    )  # fmt: skip
    assert "(lanfree, dedup)" in out
    listed = invoke("pool", "list")
    assert f"obj-{suffix}" in listed and "i-AAAA0001" in listed and SECRET not in listed

    registration = PrefectRegistryStore().get_pool(f"obj-{suffix}")
    assert registration is not None and registration.s3 is not None
    assert registration.s3.secret_access_key is not None
    assert registration.s3.secret_access_key.get_secret_value() == SECRET  # kept, encrypted, in the block
    disk = make_disk()
    write_disk(open_registered_pool(registration).open_disk_writer("set-1", "vol-a", len(disk.data)), disk)

    stats = invoke("pool", "stats", f"obj-{suffix}")
    row = next(line for line in stats.splitlines() if f"obj-{suffix}" in line)
    assert "│ 1 " in row and "no limit reported" in row, stats
    out = invoke(
        "pool", "create", "--name", f"tape-{suffix}", "--kind", "tape", "--path", str(tmp_path / "tape"),
        "--cartridge", "CC0001L8", "--cartridge", "CC0002L8", "--cartridge-capacity", "1MiB",
        "--block-size", "16KiB", "--chunk-size", "64KiB",
    )  # fmt: skip
    assert "(tape, standard)" in out
    tape = PrefectRegistryStore().get_pool(f"tape-{suffix}")
    assert tape is not None
    write_disk(open_registered_pool(tape).open_disk_writer("set-1", "vol-a", len(disk.data)), disk)
    for info in list(open_registered_pool(tape).store.list("manifests/")):
        (tmp_path / "tape" / info.key).unlink()  # the pool home is lost; the cartridges remain
    assert "1 disk backup(s) found on 2 cartridge(s)" in invoke("pool", "scan", f"tape-{suffix}")
    with pytest.raises(RegistrationError, match="needs --bucket"):
        invoke("pool", "create", "--name", f"bad-{suffix}", "--kind", "object")
