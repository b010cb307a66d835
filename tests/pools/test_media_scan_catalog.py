"""A tape or optical pool survives the loss of its home: the backup flow leaves the pool's
config and the set's catalog rows on the media, and after the whole home is deleted (config,
manifests, catalog, disc records; only the cartridges or disc images are left) `pool scan`
rebuilds it, so `sets list` shows the set with its VM and every disk exports with the SHA-256
it had at backup time. Plain and encrypted pools, through the real CLI."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from support.cli import invoke
from support.flow import POOL_PASSPHRASE, register_cloud_and_pool
from support.restore import back_up

from bingobackup.cli.prefect_server import ServerInfo
from bingobackup.cloud.client import BingoCloudClient
from bingobackup.resources.pools import OpticalOptions, TapeOptions, create_registered_pool
from bingobackup.resources.store import RegistryStore
from bingobackup.resources.users import LOCAL_ADMIN
from bingobackup.sim.server import RunningSimulator

MIB = 1 << 20


def media_options(kind: str, home: Path) -> dict[str, Any]:
    if kind == "tape":
        return {
            "tape": TapeOptions(barcodes=["AA0001L8", "AA0002L8"], capacity_bytes=64 * MIB, block_size=MIB)
        }
    return {"optical": OpticalOptions(disc_bytes=64 * MIB)}  # images in <home>/images


def lose_the_home(home: Path, keep: str) -> None:
    """Deletes everything of the pool home but the media (`library` or `images`)."""
    for child in home.iterdir():
        if child.name != keep:
            shutil.rmtree(child) if child.is_dir() else child.unlink()


@pytest.mark.parametrize(("kind", "encrypted"), [("tape", False), ("optical", True)])
def test_scan_rebuilds_the_catalog_and_config_from_the_media_alone(
    kind: str,
    encrypted: bool,
    prefect_server: ServerInfo,
    sim: RunningSimulator,
    cloud_client: BingoCloudClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path / "bingobackup-home"))
    home = tmp_path / "pool"

    def media_pool(store: RegistryStore, suffix: str) -> str:
        create_registered_pool(
            store,
            LOCAL_ADMIN,
            name=f"{kind}-{suffix}",
            kind=kind,  # type: ignore[arg-type]
            location=home,
            chunk_size=MIB,
            encrypted=encrypted,
            passphrase=POOL_PASSPHRASE if encrypted else None,
            **media_options(kind, home),
        )
        return f"{kind}-{suffix}"

    registered = register_cloud_and_pool(sim, cloud_client, home, media_pool)
    backed_up = back_up(registered, tmp_path, name=f"web-{kind}", data_mib=2)
    name = registered.pool
    if kind == "optical":
        assert "closed" in invoke("pool", "close-disc", name)  # the end of the backup window

    lose_the_home(home, keep="library" if kind == "tape" else "images")
    assert sorted(p.name for p in home.iterdir()) == ["library" if kind == "tape" else "images"]

    out = invoke("pool", "scan", name)
    recreated = "config.json" if kind == "tape" else "optical.json, config.json, 1 disc record(s)"
    assert f"recreated {recreated} in" in out, out
    assert "2 disk backup(s) found" in out and "(2 manifest(s) restored)" in out, out
    assert "Catalog: 1 set(s), 1 VM(s), 2 disk(s) rebuilt; 0 set(s) already there" in out, out

    listed = invoke("sets", "list", "--pool", name)
    assert backed_up.set_id in listed and f"job-web-{kind}" in listed, listed
    vms = invoke(
        "catalog", "query", "SELECT vm_id, vm_name, cpu > 0 AS sized FROM vm_backups", "--pool", name,
        "--format", "csv",
    )  # fmt: skip
    assert f"{backed_up.instance.instance_id},web-{kind},True" in vms, vms
    passphrase = ["--passphrase", POOL_PASSPHRASE] if encrypted else []
    for volume, sha in backed_up.sha.items():
        out = invoke(
            "export-disk", "--pool", name, "--set", backed_up.set_id, "--volume", volume,
            "--output", str(tmp_path / f"{volume}.raw"), "--sha256", *passphrase,
        )  # fmt: skip
        assert f"sha256 {sha}" in out, out

    again = invoke("pool", "scan", name)  # nothing lost now: nothing is written twice
    assert "recreated" not in again and "0 manifest(s) restored" in again, again
    assert "Catalog: 0 set(s), 0 VM(s), 0 disk(s) rebuilt; 1 set(s) already there" in again, again
