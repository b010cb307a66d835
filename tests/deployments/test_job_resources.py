"""`job create` refuses at creation what a run would refuse: here server-side dedup on a pool
that does not deduplicate (guide table 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.flow import Registered

from bingobackup.backup.job import BackupJobError
from bingobackup.resources.pools import create_registered_pool
from bingobackup.resources.users import LOCAL_ADMIN
from bingobackup.specs.job import load_job_spec
from deployments.jobs import check_job_resources


def test_job_create_refuses_server_side_dedup_on_a_pool_that_does_not_dedup(
    registered: Registered, tmp_path: Path
) -> None:
    from tasks.blocks import PrefectRegistryStore

    store, standard = PrefectRegistryStore(), f"{registered.pool}-std"
    create_registered_pool(store, LOCAL_ADMIN, name=standard, kind="standard", location=tmp_path / "std")
    server = registered.spec(pool=standard, options={"dedup_mode": "server"})
    with pytest.raises(BackupJobError, match=f"pool '{standard}' is a standard pool.*dedup_mode: agent"):
        check_job_resources(store, LOCAL_ADMIN, load_job_spec(server))
    check_job_resources(store, LOCAL_ADMIN, load_job_spec(registered.spec(pool=standard)))  # agent: fine
    check_job_resources(store, LOCAL_ADMIN, load_job_spec(registered.spec(options={"dedup_mode": "server"})))
    san = f"{registered.pool}-san"
    create_registered_pool(
        store,
        LOCAL_ADMIN,
        name=san,
        kind="lanfree",
        location=tmp_path / "san",
        pool_format="dedup",
        backup_hosts=[registered.hosts["cluster-a"]],
    )
    # A LAN-free (or object) pool in dedup format deduplicates: server-side dedup is fine there.
    check_job_resources(
        store, LOCAL_ADMIN, load_job_spec(registered.spec(pool=san, options={"dedup_mode": "server"}))
    )
