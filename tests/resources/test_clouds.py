"""Registering and managing clouds against the simulated BingoCloud."""

from __future__ import annotations

import pytest
from support.resources import CloudKeys, assert_secret_hidden, changed, closed_port

from bingobackup.resources.access import cloud_for
from bingobackup.resources.clouds import (
    deregister_cloud,
    list_clouds,
    modify_cloud,
    parse_cloud_registration,
    register_cloud,
    tag_cloud,
    update_cloud_settings,
)
from bingobackup.resources.errors import AccessDenied, CloudInUse, RegistrationError, ResourceNotFound
from bingobackup.resources.models import BackupHost, CloudRegistration, User
from bingobackup.resources.store import InMemoryRegistryStore


def test_register_saves_a_verified_cloud(
    store: InMemoryRegistryStore, admin: User, registration: CloudRegistration
) -> None:
    saved = register_cloud(store, admin, registration, retry_window_seconds=2.0)
    assert store.get_cloud("demo") == saved
    assert saved.endpoint == f"http://127.0.0.1:{registration.port}/"
    assert registration.secret_key.get_secret_value() not in repr(saved)
    assert [c.name for c in store.list_clouds()] == ["demo"]


def test_version_is_recorded_as_given_or_shown_as_assumed(
    store: InMemoryRegistryStore, admin: User, registration: CloudRegistration
) -> None:
    assert registration.version is None and registration.version_text == "V9 (assumed)"
    saved = register_cloud(store, admin, changed(registration, version=7), retry_window_seconds=2.0)
    assert store.get_cloud("demo") == saved and saved.version_text == "V7"
    with pytest.raises(RegistrationError, match=r"version: Input should be 7 or 9"):
        parse_cloud_registration({**registration.model_dump(), "secret_key": "x", "version": 8})


def test_wrong_secret_key_is_refused_and_nothing_saved(
    store: InMemoryRegistryStore, admin: User, registration: CloudRegistration, cloud_keys: CloudKeys
) -> None:
    wrong_secret = "wrong-" + cloud_keys.secret_key
    bad = changed(registration, secret_key=wrong_secret)
    with pytest.raises(RegistrationError, match="refused the credentials") as caught:
        register_cloud(store, admin, bad, retry_window_seconds=2.0)
    assert "Secret Key does not match" in str(caught.value)
    assert_secret_hidden(caught.value, wrong_secret)
    assert_secret_hidden(caught.value, cloud_keys.secret_key)
    assert store.list_clouds() == []


def test_unknown_access_key_is_refused(
    store: InMemoryRegistryStore, admin: User, registration: CloudRegistration, cloud_keys: CloudKeys
) -> None:
    bad = changed(registration, access_key="AKUNKNOWN0000042")
    # Enough of the key to tell which one was refused, too little to use it.
    with pytest.raises(RegistrationError, match="Access Key 'AKUN…0042' is not known") as caught:
        register_cloud(store, admin, bad, retry_window_seconds=2.0)
    assert_secret_hidden(caught.value, cloud_keys.secret_key)
    assert_secret_hidden(caught.value, bad.access_key)
    assert store.list_clouds() == []


def test_unreachable_address_names_address_port_and_ssl(
    store: InMemoryRegistryStore, admin: User, cloud_keys: CloudKeys
) -> None:
    port = closed_port()
    reg = CloudRegistration(
        name="nowhere",
        address="127.0.0.1",
        port=port,
        access_key=cloud_keys.access_key,
        secret_key=cloud_keys.secret_key,
        backup_host="i-00000000",
    )
    with pytest.raises(RegistrationError, match="Cannot reach BingoCloud") as caught:
        register_cloud(store, admin, reg, retry_window_seconds=0.5)
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "SSL off" in message
    assert_secret_hidden(caught.value, cloud_keys.secret_key)
    assert store.list_clouds() == []


def test_unknown_backup_host_is_refused(
    store: InMemoryRegistryStore, admin: User, registration: CloudRegistration
) -> None:
    bad = changed(registration, backup_host="i-DEADBEEF")
    with pytest.raises(RegistrationError, match="'i-DEADBEEF' does not exist"):
        register_cloud(store, admin, bad, retry_window_seconds=2.0)


def test_duplicate_name_is_refused(
    store: InMemoryRegistryStore, admin: User, registered: CloudRegistration
) -> None:
    with pytest.raises(RegistrationError, match="'demo' is already registered"):
        register_cloud(store, admin, registered, retry_window_seconds=2.0)


def test_operator_may_not_register(
    store: InMemoryRegistryStore, operator: User, registration: CloudRegistration
) -> None:
    with pytest.raises(AccessDenied, match="User 'olga' \\(role operator\\) may not register cloud 'demo'"):
        register_cloud(store, operator, registration)
    assert store.list_clouds() == []


def test_field_errors_name_the_field_and_ports_follow_ssl(cloud_keys: CloudKeys) -> None:
    base = {
        "name": "demo",
        "address": "cloud.example.com",
        "access_key": "AK",
        "secret_key": cloud_keys.secret_key,
        "backup_host": "i-1",
    }
    assert parse_cloud_registration(base).port == 80
    assert parse_cloud_registration({**base, "ssl": True}).port == 443
    assert parse_cloud_registration({**base, "ssl": True}).endpoint == "https://cloud.example.com:443/"
    with pytest.raises(RegistrationError, match=r"name: .*'Demo Cloud' is not allowed") as caught:
        parse_cloud_registration({**base, "name": "Demo Cloud"})
    assert_secret_hidden(caught.value, cloud_keys.secret_key)
    with pytest.raises(RegistrationError, match="port: "):
        parse_cloud_registration({**base, "port": 70000})
    with pytest.raises(RegistrationError, match=r"address: .*no scheme"):
        parse_cloud_registration({**base, "address": "https://cloud.example.com"})


def test_settings_are_reverified_before_saving(
    store: InMemoryRegistryStore, admin: User, registered: CloudRegistration, cloud_keys: CloudKeys
) -> None:
    with pytest.raises(RegistrationError, match="Secret Key does not match") as caught:
        update_cloud_settings(store, admin, "demo", secret_key="not-the-key", retry_window_seconds=2.0)
    assert_secret_hidden(caught.value, "not-the-key")
    assert store.get_cloud("demo") == registered  # the working settings are kept

    with pytest.raises(RegistrationError, match="Cannot reach"):
        update_cloud_settings(store, admin, "demo", port=closed_port(), retry_window_seconds=0.5)
    assert store.get_cloud("demo") == registered

    updated = update_cloud_settings(
        store, admin, "demo", address="localhost", secret_key=cloud_keys.secret_key, retry_window_seconds=2.0
    )
    assert updated.address == "localhost" and updated.port == registered.port
    assert store.get_cloud("demo") == updated


def test_a_data_network_is_refused_saying_what_carries_pool_traffic_and_an_old_one_is_cleared(
    store: InMemoryRegistryStore, admin: User, registered: CloudRegistration
) -> None:
    with pytest.raises(RegistrationError, match=r"routing table picks.*give the backup host an interface"):
        modify_cloud(store, admin, "demo", data_network="subnet-data")
    assert store.get_cloud("demo") == registered  # nothing saved
    registered.data_network = "subnet-data"  # what an older version let an admin store
    store.save_cloud(registered)
    cleared = modify_cloud(store, admin, "demo", data_network="")
    assert cleared.data_network is None and store.get_cloud("demo") == cleared


def test_cloud_modify_data_network_on_the_cli_fails_with_the_reason(
    store: InMemoryRegistryStore, admin: User, registered: CloudRegistration, monkeypatch: pytest.MonkeyPatch
) -> None:
    from collections.abc import Iterator
    from contextlib import contextmanager

    from typer.testing import CliRunner

    import bingobackup.cli.cloud as cloud_cli
    from bingobackup.cli.main import _is_operator_error, app

    @contextmanager
    def in_memory() -> Iterator[tuple[InMemoryRegistryStore, User]]:
        yield store, admin

    monkeypatch.setattr(cloud_cli, "registry", in_memory)
    result = CliRunner().invoke(app, ["cloud", "modify", "demo", "--data-network", "subnet-data"])
    # main() prints an operator error's text as `Error: …` and exits 2.
    assert result.exit_code != 0 and _is_operator_error(result.exception)  # type: ignore[arg-type]
    assert "pool traffic goes out of the interface" in str(result.exception)
    assert "data network" not in CliRunner().invoke(app, ["cloud", "list"]).output


def test_modify_renames(store: InMemoryRegistryStore, admin: User, registered: CloudRegistration) -> None:
    store.save_host(BackupHost(instance_id=registered.backup_host, cloud="demo", cluster_id="c", node_id="n"))
    renamed = modify_cloud(store, admin, "demo", new_name="lab")
    assert renamed.name == "lab"
    assert store.get_cloud("demo") is None and store.get_cloud("lab") == renamed
    host = store.get_host(registered.backup_host)
    assert host is not None and host.cloud == "lab"

    store.set_jobs_using_cloud("lab", ["nightly"])
    with pytest.raises(CloudInUse, match="Cannot rename cloud 'lab': it is used by job\\(s\\) nightly"):
        modify_cloud(store, admin, "lab", new_name="other")
    with pytest.raises(RegistrationError, match="'Bad Name' is not allowed"):
        modify_cloud(store, admin, "lab", new_name="Bad Name")


def test_deregister_refused_while_a_job_uses_the_cloud_unless_forced(
    store: InMemoryRegistryStore, admin: User, registered: CloudRegistration
) -> None:
    store.save_host(BackupHost(instance_id=registered.backup_host, cloud="demo", cluster_id="c", node_id="n"))
    store.set_jobs_using_cloud("demo", ["nightly-a", "weekly-b"])
    with pytest.raises(CloudInUse, match="nightly-a, weekly-b") as caught:
        deregister_cloud(store, admin, "demo")
    assert caught.value.jobs == ["nightly-a", "weekly-b"]
    assert "--force" in str(caught.value)
    assert store.get_cloud("demo") is not None

    removed_hosts = deregister_cloud(store, admin, "demo", force=True)
    assert removed_hosts == [registered.backup_host]
    assert store.get_cloud("demo") is None and store.list_hosts() == []
    with pytest.raises(ResourceNotFound, match="No registered cloud named 'demo'"):
        deregister_cloud(store, admin, "demo")


def test_tags_add_and_remove(
    store: InMemoryRegistryStore, admin: User, registered: CloudRegistration
) -> None:
    tag_cloud(store, admin, "demo", add={"site": "gz", "tier": "gold"})
    tagged = tag_cloud(store, admin, "demo", add={"tier": "silver"}, remove=["site"])
    assert tagged.tags == {"tier": "silver"}
    assert store.get_cloud("demo") == tagged


def test_operator_sees_and_uses_only_authorized_clouds(
    store: InMemoryRegistryStore, admin: User, operator: User, registered: CloudRegistration
) -> None:
    assert list_clouds(store, operator) == []
    with pytest.raises(AccessDenied) as caught:
        cloud_for(store, operator, "demo")
    message = str(caught.value)
    assert "User 'olga' (groups: ops) is not authorized to use cloud 'demo'" in message
    assert "authorized groups: none" in message
    assert "bingobackup cloud authorize demo --group ops" in message
    with pytest.raises(AccessDenied):
        tag_cloud(store, operator, "demo", add={"x": "y"})
    with pytest.raises(AccessDenied, match="may not deregister cloud 'demo'"):
        deregister_cloud(store, operator, "demo")
    with pytest.raises(AccessDenied, match="may not change the settings of cloud 'demo'"):
        update_cloud_settings(store, operator, "demo", port=1)
    assert [c.name for c in list_clouds(store, admin)] == ["demo"]
