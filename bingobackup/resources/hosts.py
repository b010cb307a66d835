"""Backup hosts: register (with the OS compatibility check), activate, authorize.

A backup host is a VM inside a registered cloud that runs our agent; it attaches snapshot
volumes to itself, so it must run an OS the agent supports and live in the VMs' cluster.
"""

from __future__ import annotations

from typing import NamedTuple

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.errors import CloudError, CloudNotFoundError
from bingobackup.cloud.models import Instance
from bingobackup.resources.access import (
    KIND_LABELS,
    ResourceKind,
    find_cloud,
    find_host,
    may_use,
    not_found,
    require_admin,
)
from bingobackup.resources.errors import IncompatibleBackupHost, RegistrationError
from bingobackup.resources.models import BackupHost, CloudRegistration, PoolRegistration, User
from bingobackup.resources.store import RegistryStore


class SupportedOs(NamedTuple):
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


# The guide's compatibility list for the backup-host agent.
SUPPORTED_BACKUP_HOST_OS: tuple[SupportedOs, ...] = (
    SupportedOs("Ubuntu", "18.04"),
    SupportedOs("Ubuntu", "20.04"),
    SupportedOs("Ubuntu", "22.04"),
    SupportedOs("CentOS", "7.6"),
    SupportedOs("openEuler", "20.03"),
)
SUPPORTED_ARCHITECTURES: tuple[str, ...] = ("x86_64",)
_ARCHITECTURE_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "x86-64": "x86_64"}


def _version_matches(actual: str, supported: str) -> bool:
    # "20.04.6 LTS" is a 20.04 point release; "20.040" is not.
    head = actual.strip().split(" ", 1)[0]
    return head == supported or head.startswith(supported + ".")


def supported_os_text() -> str:
    arches = "/".join(SUPPORTED_ARCHITECTURES)
    return ", ".join(str(os) for os in SUPPORTED_BACKUP_HOST_OS) + f" ({arches})"


def check_backup_host_os(instance: Instance) -> None:
    """Raise `IncompatibleBackupHost` unless the instance's OS and architecture are supported."""
    arch = instance.architecture.strip().lower()
    arch = _ARCHITECTURE_ALIASES.get(arch, arch)
    os_ok = any(
        instance.os_name.strip().lower() == os.name.lower()
        and _version_matches(instance.os_version, os.version)
        for os in SUPPORTED_BACKUP_HOST_OS
    )
    if os_ok and arch in SUPPORTED_ARCHITECTURES:
        return
    found = f"{instance.os_name or 'unknown OS'} {instance.os_version or ''}".strip()
    raise IncompatibleBackupHost(
        f"Instance '{instance.instance_id}' ({instance.name}) runs {found} on "
        f"{instance.architecture or 'an unknown architecture'}, which the backup-host agent does not "
        f"support. Supported: {supported_os_text()}. Use a VM with one of these as the backup host."
    )


def register_backup_host(
    store: RegistryStore,
    user: User,
    cloud: str,
    instance_id: str,
    *,
    client: BingoCloudClient | None = None,
) -> BackupHost:
    """Admin only: record instance `instance_id` of `cloud` as a (not yet activated) backup host."""
    require_admin(user, f"register backup host '{instance_id}'")
    registration = find_cloud(store, cloud)
    existing = store.get_host(instance_id)
    if existing is not None:
        raise RegistrationError(
            f"Instance '{instance_id}' is already registered as a backup host of cloud '{existing.cloud}'."
        )
    instance = _read_instance(registration, instance_id, client)
    check_backup_host_os(instance)
    host = BackupHost(
        instance_id=instance.instance_id,
        cloud=registration.name,
        cluster_id=instance.cluster_id,
        node_id=instance.node_id,
        name=instance.name,
        os_name=instance.os_name,
        os_version=instance.os_version,
        architecture=instance.architecture,
    )
    store.save_host(host)
    return host


def _read_instance(cloud: CloudRegistration, instance_id: str, client: BingoCloudClient | None) -> Instance:
    try:
        return (client or cloud.client()).get_instance(instance_id)
    except CloudNotFoundError:
        raise RegistrationError(
            f"Instance '{instance_id}' does not exist in cloud '{cloud.name}'. "
            "Find the backup-host VM with `bingobackup resources browse`."
        ) from None
    except CloudError as exc:
        raise RegistrationError(
            f"Cannot read instance '{instance_id}' from cloud '{cloud.name}' ({cloud.describe_connection()}): {exc}"
        ) from None


def activate_backup_host(store: RegistryStore, user: User, instance_id: str) -> BackupHost:
    require_admin(user, f"activate backup host '{instance_id}'")
    host = find_host(store, instance_id)
    host.activated = True
    store.save_host(host)
    return host


def deactivate_backup_host(store: RegistryStore, user: User, instance_id: str) -> BackupHost:
    require_admin(user, f"deactivate backup host '{instance_id}'")
    host = find_host(store, instance_id)
    host.activated = False
    store.save_host(host)
    return host


def deregister_backup_host(store: RegistryStore, user: User, instance_id: str) -> None:
    require_admin(user, f"deregister backup host '{instance_id}'")
    find_host(store, instance_id)
    store.delete_host(instance_id)


Authorizable = CloudRegistration | BackupHost | PoolRegistration


def _registered(store: RegistryStore, kind: ResourceKind) -> dict[str, Authorizable]:
    if kind == "cloud":
        return {c.name: c for c in store.list_clouds()}
    if kind == "host":
        return {h.instance_id: h for h in store.list_hosts()}
    return {p.name: p for p in store.list_pools()}


def _save(store: RegistryStore, resource: Authorizable) -> None:
    if isinstance(resource, CloudRegistration):
        store.save_cloud(resource)
    elif isinstance(resource, BackupHost):
        store.save_host(resource)
    else:
        store.save_pool(resource)


def _change_groups(
    store: RegistryStore, user: User, kind: ResourceKind, names: list[str], groups: list[str], grant: bool
) -> list[Authorizable]:
    verb = "authorize" if grant else "deauthorize"
    label = KIND_LABELS[kind]
    require_admin(user, f"{verb} {label}s")
    if not [g for g in groups if g.strip()]:
        raise RegistrationError(f"Name at least one user group to {verb}.")
    if not names:
        raise RegistrationError(f"Name at least one {label} to {verb}.")
    registered = _registered(store, kind)
    # A batch is all or nothing: refuse it whole when any name is unknown.
    for name in names:
        if name not in registered:
            raise not_found(f"registered {label}", name, registered, f"bingobackup {kind} list")
    changed: list[Authorizable] = []
    for name in names:
        resource = registered[name]
        if grant:
            resource.groups = [*resource.groups, *groups]
        else:
            dropped = {g.strip() for g in groups}
            resource.groups = [g for g in resource.groups if g not in dropped]
        _save(store, resource)
        changed.append(resource)
    return changed


def authorize(
    store: RegistryStore, user: User, kind: ResourceKind, names: list[str], groups: list[str]
) -> list[Authorizable]:
    """Admin only: let `groups` use every resource in `names` (one or a batch)."""
    return _change_groups(store, user, kind, names, groups, grant=True)


def deauthorize(
    store: RegistryStore, user: User, kind: ResourceKind, names: list[str], groups: list[str]
) -> list[Authorizable]:
    """Admin only: withdraw `groups` from every resource in `names`."""
    return _change_groups(store, user, kind, names, groups, grant=False)


def backup_hosts_in_cluster(
    store: RegistryStore,
    cloud: str,
    cluster_id: str,
    *,
    user: User | None = None,
    activated_only: bool = True,
) -> list[BackupHost]:
    """Backup hosts of `cloud` in `cluster_id` (only those `user` may use, when given)."""
    return [
        host
        for host in store.list_hosts()
        if host.cloud == cloud
        and host.cluster_id == cluster_id
        and (host.activated or not activated_only)
        and (user is None or may_use(user, host.groups))
    ]


def registered_backup_host_ids(store: RegistryStore, cloud: str) -> set[str]:
    """Every backup host of `cloud`, activated or not: discovery never selects these for backup."""
    return {host.instance_id for host in store.list_hosts() if host.cloud == cloud}
