"""`backup run`, `sets list`, `catalog query` and `export-disk` as an operator types them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml
from support.flow import POOL_PASSPHRASE, Registered
from support.pool_files import damage_chunk
from typer.testing import CliRunner

from bingobackup.cli.main import app
from bingobackup.format.constants import FORMAT_VERSION
from bingobackup.pools import open_pool

runner = CliRunner()


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=code == 0)
    assert result.exit_code == code, result.output
    return result.output


def test_backup_run_then_list_query_and_export_byte_identical(
    registered: Registered, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BINGOBACKUP_POOL_PASSPHRASE", POOL_PASSPHRASE)
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump(registered.spec(content=[{"vm": "linux_local"}])))
    out = invoke("backup", "run", str(spec))
    set_id = out.split("backup set: ")[1].split()[0]
    pool = str(registered.pool_dir)
    assert set_id in invoke("sets", "list", "--pool", pool, "--vm", "linux_local")
    rows = json.loads(
        invoke("catalog", "query", "SELECT volume_id FROM disk_backups", "--pool", pool, "--format", "json")
    )
    volume = rows[0]["volume_id"]
    query = "SELECT format_version FROM backup_sets"
    assert json.loads(invoke("catalog", "query", query, "--pool", pool, "--format", "json")) == [
        {"format_version": FORMAT_VERSION}  # the set records the pool format it was written in
    ]
    image = tmp_path / "disk.raw"
    out = invoke(
        "export-disk", "--pool", pool, "--set", set_id, "--volume", volume, "--output", str(image), "--sha256"
    )
    source = hashlib.sha256(registered.volume_file(volume).read_bytes()).hexdigest()
    assert f"sha256 {source}" in out

    # A damaged chunk is caught on export, naming the VM, the disk and the offset.
    ref = open_pool(registered.pool_dir, POOL_PASSPHRASE).load_manifest(set_id, volume).chunks[0]
    damage_chunk(registered.pool_dir, ref, ref.stored_size // 2)
    result = runner.invoke(
        app,
        [
            "export-disk",
            "--pool",
            pool,
            "--set",
            set_id,
            "--volume",
            volume,
            "--output",
            str(tmp_path / "b.raw"),
        ],
    )
    assert result.exit_code != 0
    message = str(result.exception)
    assert "linux_local" in message and volume in message and "offset" in message
    assert not (tmp_path / "b.raw").exists()
