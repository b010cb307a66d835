"""`bingobackup gc` and the `bingobackup-gc` flow against the session's Prefect server: the
dry run changes nothing, the flow frees the deleted set's data and leaves a summary artifact."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bingobackup.cli.main import app
from bingobackup.cli.prefect_server import ServerInfo
from bingobackup.pools import Pool
from bingobackup.resources.pools import create_registered_pool, open_registered_pool
from bingobackup.resources.users import LOCAL_ADMIN

CHUNK = 64 * 1024


def backup(pool: Pool, set_id: str, data: bytes) -> None:
    writer = pool.open_disk_writer(set_id, "vol-a", len(data))
    for offset in range(0, len(data), CHUNK):
        writer.put_chunk(offset, data[offset : offset + CHUNK])
    writer.commit()


def data_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "data").rglob("*") if p.is_file())


def test_gc_through_the_cli_and_the_flow(
    prefect_server: ServerInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.gc import collect_garbage
    from tasks.blocks import PrefectRegistryStore

    monkeypatch.setenv("BINGOBACKUP_HOME", str(tmp_path / "home"))
    name = f"gc-{uuid.uuid4().hex[:6]}"
    registration = create_registered_pool(
        PrefectRegistryStore(), LOCAL_ADMIN, name=name, kind="dedup", location=tmp_path / "pool",
        encrypted=False, chunk_size=CHUNK,
    )  # fmt: skip
    pool = open_registered_pool(registration)
    kept, gone = os.urandom(3 * CHUNK), os.urandom(3 * CHUNK)
    backup(pool, "set-1", kept)
    backup(pool, "set-2", gone)
    pool.delete_set("set-2")
    before = data_bytes(tmp_path / "pool")

    dry = CliRunner().invoke(app, ["gc", "--pool", name, "--dry-run"], catch_exceptions=False)
    assert dry.exit_code == 0, dry.output
    assert "Dry run: nothing changed" in dry.output and "blobs would be freed" in dry.output
    assert data_bytes(tmp_path / "pool") == before

    state = collect_garbage(pool=name, return_state=True)
    report = state.result()
    assert report["blobs_freed"] == 1 and report["bytes_freed"] == before - data_bytes(tmp_path / "pool") > 0
    again = open_registered_pool(registration)
    manifest = again.load_manifest("set-1", "vol-a")
    assert b"".join(plaintext for _, plaintext in again.iter_disk(manifest)) == kept
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    summary = next(a for a in artifacts if a.key == "gc-summary")
    assert "bytes freed" in str(summary.data) and name in (summary.description or "")

    cli = CliRunner().invoke(app, ["gc", "--pool", name], catch_exceptions=False)
    assert cli.exit_code == 0 and "blobs freed" in cli.output and "0 (0 packs)" in cli.output
