"""A LAN-free pool through the flows: the backup host that sees the storage backs up and
restores through it; a job on a host that cannot see it is refused before anything is touched
— at run time and already when the job is created."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from support.flow import POOL_PASSPHRASE, Registered
from support.restore import back_up, sha256

from bingobackup.resources.errors import RegistrationError
from bingobackup.resources.pools import create_registered_pool
from bingobackup.resources.users import LOCAL_ADMIN
from bingobackup.restore.verification import verification_code
from bingobackup.specs.job import load_job_spec
from bingobackup.specs.restore import load_restore_spec
from deployments.jobs import check_job_resources
from flows.backup import run_backup_now
from flows.restore import restore_disk

REFUSAL = "is LAN-free storage attached to backup host(s)"


@pytest.fixture
def on_san(registered: Registered, tmp_path: Path) -> Registered:
    """`registered` with an encrypted LAN-free pool that only cluster-a's backup host sees."""
    from tasks.blocks import PrefectRegistryStore

    name = f"san-{registered.cloud}"
    create_registered_pool(
        PrefectRegistryStore(),
        LOCAL_ADMIN,
        name=name,
        kind="lanfree",
        location=tmp_path / "san",
        backup_hosts=[registered.hosts["cluster-a"]],
        encrypted=True,
        passphrase=POOL_PASSPHRASE,
    )
    return dataclasses.replace(registered, pool=name, pool_dir=tmp_path / "san")


def test_lanfree_pool_backs_up_and_restores_on_the_host_that_sees_it(
    on_san: Registered, tmp_path: Path
) -> None:
    backed_up = back_up(on_san, tmp_path, name="web-san", data_mib=2)
    state, _ = backed_up.run(
        restore_disk,
        kind="disk",
        target={"disks": [{"volume": backed_up.data_volume, "name": "data-from-san"}]},
    )
    assert state.is_completed(), state.message
    now = on_san.client.get_instance(backed_up.instance.instance_id)
    before = {b.volume_id for b in backed_up.instance.block_devices}
    [added] = [b for b in now.block_devices if b.volume_id not in before]
    assert sha256(on_san.volume_file(added.volume_id)) == backed_up.sha[backed_up.data_volume]


def test_a_job_on_a_host_that_cannot_see_the_lanfree_pool_is_refused_before_any_snapshot(
    on_san: Registered,
) -> None:
    from tasks.blocks import PrefectRegistryStore

    spec = load_job_spec(on_san.spec(cluster="cluster-b", name="job-wrong-host"))
    with pytest.raises(RegistrationError, match=re.escape(REFUSAL)):
        check_job_resources(PrefectRegistryStore(), LOCAL_ADMIN, spec)  # `job create` checks this

    snapshots_before = on_san.sim.stats().requests.get("CreateSnapshot", 0)
    state = run_backup_now(spec)
    assert state.is_failed()
    assert REFUSAL in str(state.message) and on_san.hosts["cluster-b"] in str(state.message)
    assert on_san.sim.stats().requests.get("CreateSnapshot", 0) == snapshots_before


def test_a_restore_on_a_host_that_cannot_see_the_lanfree_pool_is_refused_before_anything_is_created(
    on_san: Registered, tmp_path: Path
) -> None:
    backed_up = back_up(on_san, tmp_path, name="web-san-b", data_mib=1)
    volumes_before = {v.volume_id for v in on_san.client.describe_volumes()}
    spec = load_restore_spec(
        backed_up.spec(
            kind="disk",
            backup_host=on_san.hosts["cluster-b"],
            target={"disks": [{"volume": backed_up.data_volume, "name": "never"}]},
        )
    )
    state = restore_disk(spec=spec, confirm=verification_code(spec), return_state=True)
    assert state.is_failed()
    assert REFUSAL in str(state.message)
    assert {v.volume_id for v in on_san.client.describe_volumes()} == volumes_before
