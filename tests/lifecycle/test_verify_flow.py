"""The `bingobackup-verify` flow on the session's Prefect server: progress and summary artifacts,
a damaged pool ends the run Failed naming the damage, and the run is recorded in the catalog."""

from __future__ import annotations

import uuid
from pathlib import Path
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.client.schemas.objects import Artifact
from support.verify import CHUNK, Backups, chunk_at, flip_byte, random_data

from bingobackup.cli.prefect_server import ServerInfo
from bingobackup.resources.pools import create_registered_pool, open_registered_pool
from bingobackup.resources.users import LOCAL_ADMIN
from catalog import Catalog
from flows.verify import verify
from tasks.blocks import PrefectRegistryStore


def artifacts_of(flow_run_id: UUID | None) -> dict[str, Artifact]:
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id] if flow_run_id else [])
            )
        )
    return {a.key: a for a in artifacts if a.key}


def test_the_verify_flow_reports_progress_and_fails_on_damage(
    prefect_server: ServerInfo, tmp_path: Path
) -> None:
    name = f"verify-{uuid.uuid4().hex[:8]}"
    registration = create_registered_pool(
        PrefectRegistryStore(),
        LOCAL_ADMIN,
        name=name,
        kind="dedup",
        location=tmp_path / "pool",
        chunk_size=CHUNK,
        encrypted=True,
        passphrase="flow-test-passphrase",
    )
    backups = Backups(
        open_registered_pool(registration), (str(tmp_path / "pool"), None), tmp_path / "sources"
    )
    backups.back_up("set-1", "web", random_data(3))
    backups.back_up("set-2", "db", random_data(2), day=1)

    clean = verify(pool=name, return_state=True)

    assert clean.is_completed(), clean.message
    by_key = artifacts_of(clean.state_details.flow_run_id)
    assert by_key["verify-progress"].type == "progress" and by_key["verify-progress"].data == 100.0
    assert by_key["verify-summary"].type == "table" and "set-2" in str(by_key["verify-summary"].data)
    assert "verify-damaged" not in by_key

    flip_byte(backups.pool, chunk_at(backups.manifests[("set-2", "vol-db-root")], CHUNK))
    # Sets fully verified within a day are skipped: set-2's damage is found only without it.
    assert verify(pool=name, since_days=1, return_state=True).is_completed()
    damaged = verify(pool=name, vm="db", return_state=True)

    assert damaged.is_failed()
    assert "1 damaged reference(s) in set(s) set-2" in str(damaged.message)
    assert "restore the damaged disks" in str(damaged.message)
    rows = str(artifacts_of(damaged.state_details.flow_run_id)["verify-damaged"].data)
    assert "db" in rows and "vol-db-root" in rows and str(CHUNK) in rows and "set-2" in rows
    with Catalog.open(str(tmp_path / "pool"), pool=name) as cat:
        rows = cat.query(
            "SELECT set_id, status, flow_run_id FROM verifications ORDER BY verified_at, set_id"
        ).values.tolist()
    assert [r[:2] for r in rows] == [["set-1", "ok"], ["set-2", "ok"], ["set-2", "damaged"]]
    assert rows[-1][2] == str(damaged.state_details.flow_run_id)
