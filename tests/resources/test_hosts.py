"""Backup hosts: OS compatibility, activation, authorization to user groups."""

from __future__ import annotations

import pytest
from support.resources import instance_id_named

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.models import Instance, InstanceState
from bingobackup.resources.access import backup_host_for, cloud_for
from bingobackup.resources.errors import (
    AccessDenied,
    IncompatibleBackupHost,
    RegistrationError,
    ResourceNotFound,
)
from bingobackup.resources.hosts import (
    activate_backup_host,
    authorize,
    backup_hosts_in_cluster,
    check_backup_host_os,
    deauthorize,
    register_backup_host,
)
from bingobackup.resources.models import CloudRegistration, User
from bingobackup.resources.store import InMemoryRegistryStore

SUPPORTED_TEXT = "Ubuntu 18.04, Ubuntu 20.04, Ubuntu 22.04, CentOS 7.6, openEuler 20.03 (x86_64)"


def _instance(os_name: str, os_version: str, architecture: str = "x86_64") -> Instance:
    return Instance(
        instance_id="i-TEST0001",
        name="candidate",
        state=InstanceState(code=16, name="running"),
        instance_type="m1.small",
        cpu=1,
        memory_mib=1024,
        cluster_id="cluster-a",
        node_id="node1@10.0.0.1",
        storage_id="st-1",
        os_name=os_name,
        os_version=os_version,
        architecture=architecture,
    )


@pytest.mark.parametrize(
    ("os_name", "os_version", "arch"),
    [
        ("Ubuntu", "18.04", "x86_64"),
        ("ubuntu", "20.04.6 LTS", "x86_64"),
        ("Ubuntu", "22.04", "amd64"),
        ("CentOS", "7.6.1810", "x86_64"),
        ("openEuler", "20.03", "x86_64"),
    ],
)
def test_supported_operating_systems_pass(os_name: str, os_version: str, arch: str) -> None:
    check_backup_host_os(_instance(os_name, os_version, arch))


@pytest.mark.parametrize(
    ("os_name", "os_version", "arch"),
    [
        ("CentOS", "6.10", "x86_64"),
        ("CentOS", "7.60", "x86_64"),
        ("Debian", "11", "x86_64"),
        ("Ubuntu", "20.04", "aarch64"),
        ("Windows Server", "2019", "x86_64"),
    ],
)
def test_unsupported_operating_systems_are_refused_with_the_list(
    os_name: str, os_version: str, arch: str
) -> None:
    with pytest.raises(IncompatibleBackupHost) as caught:
        check_backup_host_os(_instance(os_name, os_version, arch))
    message = str(caught.value)
    assert f"runs {os_name} {os_version} on {arch}" in message
    assert f"Supported: {SUPPORTED_TEXT}" in message


def test_register_activate_and_find_backup_host(
    store: InMemoryRegistryStore, admin: User, registered: CloudRegistration, cloud_client: BingoCloudClient
) -> None:
    host = register_backup_host(store, admin, "demo", registered.backup_host, client=cloud_client)
    instance = cloud_client.get_instance(registered.backup_host)
    assert (host.cluster_id, host.node_id, host.name) == (
        instance.cluster_id,
        instance.node_id,
        instance.name,
    )
    assert (host.os_name, host.os_version, host.architecture) == ("Ubuntu", "20.04", "x86_64")
    assert not host.activated
    assert backup_hosts_in_cluster(store, "demo", host.cluster_id) == []
    with pytest.raises(AccessDenied, match=r"not activated.*bingobackup host activate"):
        backup_host_for(store, admin, host.instance_id)

    activated = activate_backup_host(store, admin, host.instance_id)
    assert activated.activated and store.get_host(host.instance_id) == activated
    assert backup_hosts_in_cluster(store, "demo", host.cluster_id) == [activated]
    assert backup_host_for(store, admin, host.instance_id) == activated

    with pytest.raises(RegistrationError, match="already registered as a backup host of cloud 'demo'"):
        register_backup_host(store, admin, "demo", host.instance_id, client=cloud_client)


def test_demo_vm_with_unsupported_os_is_refused(
    store: InMemoryRegistryStore, admin: User, registered: CloudRegistration, cloud_client: BingoCloudClient
) -> None:
    incompatible = []
    for instance in cloud_client.describe_instances():
        try:
            check_backup_host_os(instance)
        except IncompatibleBackupHost:
            incompatible.append(instance)
    assert incompatible, "the demo scenario should hold a VM whose OS is not on the backup-host list"
    vm = incompatible[0]
    with pytest.raises(IncompatibleBackupHost, match="does not support") as caught:
        register_backup_host(store, admin, "demo", vm.instance_id, client=cloud_client)
    assert SUPPORTED_TEXT in str(caught.value) and vm.instance_id in str(caught.value)
    assert store.list_hosts() == []


def test_unknown_instance_and_cloud_are_named(
    store: InMemoryRegistryStore, admin: User, registered: CloudRegistration, cloud_client: BingoCloudClient
) -> None:
    with pytest.raises(RegistrationError, match="Instance 'i-NOPE0000' does not exist in cloud 'demo'"):
        register_backup_host(store, admin, "demo", "i-NOPE0000", client=cloud_client)
    with pytest.raises(ResourceNotFound, match=r"No registered cloud named 'dmeo'\. Did you mean 'demo'"):
        register_backup_host(store, admin, "dmeo", registered.backup_host)


def test_operators_may_not_register_activate_or_authorize(
    store: InMemoryRegistryStore,
    admin: User,
    operator: User,
    registered: CloudRegistration,
    cloud_client: BingoCloudClient,
) -> None:
    with pytest.raises(AccessDenied, match="may not register backup host"):
        register_backup_host(store, operator, "demo", registered.backup_host, client=cloud_client)
    host = register_backup_host(store, admin, "demo", registered.backup_host, client=cloud_client)
    with pytest.raises(
        AccessDenied,
        match=f"User 'olga' \\(role operator\\) may not activate backup host '{host.instance_id}': only admins may",
    ):
        activate_backup_host(store, operator, host.instance_id)
    with pytest.raises(AccessDenied, match="may not authorize backup hosts"):
        authorize(store, operator, "host", [host.instance_id], ["ops"])
    with pytest.raises(AccessDenied, match="may not authorize clouds"):
        authorize(store, operator, "cloud", ["demo"], ["ops"])
    stored = store.get_host(host.instance_id)
    assert stored is not None and not stored.activated and stored.groups == []


def test_operator_uses_only_resources_authorized_to_its_groups(
    store: InMemoryRegistryStore,
    admin: User,
    operator: User,
    registered: CloudRegistration,
    cloud_client: BingoCloudClient,
) -> None:
    host = register_backup_host(store, admin, "demo", registered.backup_host, client=cloud_client)
    activate_backup_host(store, admin, host.instance_id)

    with pytest.raises(AccessDenied) as caught:
        backup_host_for(store, operator, host.instance_id)
    message = str(caught.value)
    assert f"not authorized to use backup host '{host.instance_id}'" in message
    assert f"bingobackup host authorize {host.instance_id} --group ops" in message
    assert backup_hosts_in_cluster(store, "demo", host.cluster_id, user=operator) == []

    authorize(store, admin, "host", [host.instance_id], ["finance"])
    with pytest.raises(AccessDenied, match="authorized groups: finance"):
        backup_host_for(store, operator, host.instance_id)

    authorize(store, admin, "host", [host.instance_id], ["ops"])
    authorize(store, admin, "cloud", ["demo"], ["ops"])
    assert backup_host_for(store, operator, host.instance_id).groups == ["finance", "ops"]
    assert cloud_for(store, operator, "demo").groups == ["ops"]
    assert [
        h.instance_id for h in backup_hosts_in_cluster(store, "demo", host.cluster_id, user=operator)
    ] == [host.instance_id]

    deauthorize(store, admin, "host", [host.instance_id], ["ops"])
    with pytest.raises(AccessDenied):
        backup_host_for(store, operator, host.instance_id)


def test_batch_authorize_is_all_or_nothing(
    store: InMemoryRegistryStore, admin: User, registered: CloudRegistration, cloud_client: BingoCloudClient
) -> None:
    ids = [
        register_backup_host(
            store, admin, "demo", instance_id_named(cloud_client, name), client=cloud_client
        ).instance_id
        for name in ("backup-host-cluster-a", "backup-host-cluster-b")
    ]
    with pytest.raises(ResourceNotFound, match="No registered backup host named 'i-MISSING'"):
        authorize(store, admin, "host", [*ids, "i-MISSING"], ["ops"])
    assert all(h.groups == [] for h in store.list_hosts())

    changed = authorize(store, admin, "host", ids, ["ops", "dev", "ops"])
    assert [r.groups for r in changed] == [["ops", "dev"], ["ops", "dev"]]
    assert sorted(h.instance_id for h in store.list_hosts() if h.groups == ["ops", "dev"]) == sorted(ids)
    with pytest.raises(RegistrationError, match="at least one user group"):
        authorize(store, admin, "host", ids, [" "])
