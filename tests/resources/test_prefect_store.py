"""The Prefect-backed registry store: Blocks round-trip, secrets stay masked."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.testing.utilities import prefect_test_harness

from bingobackup.resources.models import BackupHost, CloudRegistration, User
from tasks.blocks import (
    BingoCloudBlock,
    PrefectRegistryStore,
    block_document_name,
    register_block_types,
)

SECRET = "prefect-store-secret-value-42"


@pytest.fixture(scope="module")
def prefect_store() -> Iterator[PrefectRegistryStore]:
    with prefect_test_harness(server_startup_timeout=120):
        register_block_types()
        yield PrefectRegistryStore()


def _cloud(name: str = "demo") -> CloudRegistration:
    return CloudRegistration(
        name=name,
        address="127.0.0.1",
        port=18080,
        access_key="AKPREFECT",
        secret_key=SECRET,
        backup_host="i-0000BEEF",
        tags={"site": "lab"},
        groups=["ops"],
    )


def test_cloud_block_round_trips_and_masks_the_secret(prefect_store: PrefectRegistryStore) -> None:
    cloud = _cloud()
    prefect_store.save_cloud(cloud)

    loaded = prefect_store.get_cloud("demo")
    assert loaded == cloud
    assert loaded is not None and loaded.secret_key.get_secret_value() == SECRET
    assert [c.name for c in prefect_store.list_clouds()] == ["demo"]

    # What the UI and API show without include_secrets: the secret is masked.
    with get_client(sync_client=True) as client:
        document = client.read_block_document_by_name("demo", "bingocloud", include_secrets=False)
    assert SECRET not in repr(document)
    assert SECRET not in document.model_dump_json()
    assert document.data["secret_key"] != SECRET
    block = BingoCloudBlock.load("demo")
    assert SECRET not in repr(block) and SECRET not in str(block)

    prefect_store.delete_cloud("demo")
    assert prefect_store.get_cloud("demo") is None
    assert prefect_store.list_clouds() == []


def test_hosts_and_users_use_safe_document_names(prefect_store: PrefectRegistryStore) -> None:
    upper = BackupHost(instance_id="i-49ADD723", cloud="demo", cluster_id="c1", node_id="n1@10.0.0.1")
    lower = upper.model_copy(update={"instance_id": "i-49add723"})
    prefect_store.save_host(upper)
    prefect_store.save_host(lower)
    assert block_document_name("i-49ADD723") != block_document_name("i-49add723")
    assert prefect_store.get_host("i-49ADD723") == upper
    assert [h.instance_id for h in prefect_store.list_hosts()] == ["i-49ADD723", "i-49add723"]

    user = User(name="Alice Smith", role="operator", groups=["ops"])
    prefect_store.save_user(user)
    assert prefect_store.get_user("Alice Smith") == user
    prefect_store.delete_user("Alice Smith")
    prefect_store.delete_host("i-49ADD723")
    prefect_store.delete_host("i-49add723")
    assert prefect_store.list_users() == [] and prefect_store.list_hosts() == []


def test_jobs_using_cloud_reads_deployment_parameters(prefect_store: PrefectRegistryStore) -> None:
    assert prefect_store.jobs_using_cloud("demo") == []
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("backup")
        client.create_deployment(
            flow_id=flow_id, name="nightly-a", parameters={"spec": {"cloud": "demo", "pool": "p"}}
        )
        client.create_deployment(flow_id=flow_id, name="other", parameters={"spec": {"cloud": "elsewhere"}})
    assert prefect_store.jobs_using_cloud("demo") == ["nightly-a"]


def test_a_snapshot_reads_every_registration_with_its_secrets_page_by_page(
    prefect_store: PrefectRegistryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a backup or restore run resolves its job from (one request per page, not per read)."""
    clouds = [_cloud(f"snap-{i}") for i in range(3)]
    hosts = [
        BackupHost(instance_id=f"i-5NAP000{i}", cloud="snap-0", cluster_id="c1", node_id="n1@10.0.0.1")
        for i in range(2)
    ]
    user = User(name="Snap Operator", role="operator", groups=["ops"])
    for cloud in clouds:
        prefect_store.save_cloud(cloud)
    for host in hosts:
        prefect_store.save_host(host)
    prefect_store.save_user(user)
    # Another kind of block on the server is not ours and is left out.
    Secret(value="not a registration").save("snapshot-other-block", overwrite=True)
    monkeypatch.setattr("tasks.paging.PAGE", 2)  # six documents: three full pages and an empty one
    try:
        snapshot = prefect_store.snapshot()
        assert snapshot.list_clouds() == clouds
        cloud = snapshot.get_cloud("snap-1")
        assert cloud is not None and cloud.secret_key.get_secret_value() == SECRET
        assert snapshot.list_hosts() == hosts
        assert snapshot.list_users() == [user]
        assert snapshot.list_pools() == []
        # Read one type at a time (the registry's own lists) page by page too: every host
        # once, over full pages, however many there are.
        assert prefect_store.list_hosts() == hosts
        assert [c.name for c in prefect_store.list_clouds()] == [c.name for c in clouds]

        snapshot.delete_cloud("snap-2")  # the snapshot is the run's own copy
        assert prefect_store.get_cloud("snap-2") == clouds[2]
    finally:
        for cloud in clouds:
            prefect_store.delete_cloud(cloud.name)
        for host in hosts:
            prefect_store.delete_host(host.instance_id)
        prefect_store.delete_user(user.name)
        with get_client(sync_client=True) as client:
            client.delete_block_document(
                client.read_block_document_by_name("snapshot-other-block", "secret").id
            )


def test_a_commands_snapshot_is_handed_to_its_run_once_and_only_while_fresh(
    prefect_store: PrefectRegistryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`backup run` hands the registry it read for its checks to the run it starts: the run's
    resolve step takes that read (no second round trip), once, within
    HANDED_SNAPSHOT_SECONDS, and never after the command's block ended."""
    from tasks import blocks

    prefect_store.save_cloud(_cloud("handed-1"))
    try:
        checked = prefect_store.snapshot()
        with blocks.snapshot_handed_to_run(checked):
            assert blocks.take_handed_snapshot() is checked
            assert blocks.take_handed_snapshot() is None  # once: a retry reads again
        with blocks.snapshot_handed_to_run(checked):
            now = time.monotonic()
            monkeypatch.setattr(blocks.time, "monotonic", lambda: now + blocks.HANDED_SNAPSHOT_SECONDS + 1)
            assert blocks.take_handed_snapshot() is None  # too old
            monkeypatch.undo()
        with blocks.snapshot_handed_to_run(checked):
            pass
        assert blocks.take_handed_snapshot() is None  # the command's block is over
    finally:
        prefect_store.delete_cloud("handed-1")
