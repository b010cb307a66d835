"""Backup hosts: register (with the OS compatibility check), activate, authorize.

A backup host is a VM inside a registered cloud that runs our agent; it attaches snapshot
volumes to itself, so it must run an OS the agent supports and live in the VMs' cluster.

Where the OS comes from, in order: the instance's `osName`/`osVersion` (the simulator sends
them; the public BingoCloud client reads no such fields, so a real cloud may not), the
instance's image (DescribeImages `osName`, `name`, `description`, `platform`), and last the
admin's word (`host register --os`). The worker checks the host's own /etc/os-release when
it starts (`check_local_os`), so a wrong word is caught before any backup runs there.
"""

from __future__ import annotations

import platform
import re
from pathlib import Path
from typing import NamedTuple

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.errors import CloudError, CloudNotFoundError
from bingobackup.cloud.models import Image, Instance
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


def _architecture(value: str) -> str:
    arch = value.strip().lower()
    return _ARCHITECTURE_ALIASES.get(arch, arch)


def os_from_text(text: str) -> SupportedOs | None:
    """The supported OS that free text names ("Ubuntu 20.04 64bit", "CentOS-7.6.1810-x86_64",
    "openEuler 20.03 LTS"), or None. "CentOS 7.60" and "Ubuntu 20.041" name none."""
    for os in SUPPORTED_BACKUP_HOST_OS:
        pattern = rf"\b{re.escape(os.name)}\b\D{{0,20}}?{re.escape(os.version)}(?!\d)"
        if re.search(pattern, text, flags=re.IGNORECASE):
            return os
    return None


def check_backup_host_os(instance: Instance) -> None:
    """Raise `IncompatibleBackupHost` unless the instance's OS and architecture are supported."""
    arch = _architecture(instance.architecture)
    os_ok = any(
        instance.os_name.strip().lower() == os.name.lower()
        and _version_matches(instance.os_version, os.version)
        for os in SUPPORTED_BACKUP_HOST_OS
    )
    if os_ok and arch in SUPPORTED_ARCHITECTURES:
        return
    found = f"{instance.os_name or 'unknown OS'} {instance.os_version or ''}".strip()
    raise _refuse(instance, found, instance.architecture)


def _refuse(instance: Instance, found: str, architecture: str) -> IncompatibleBackupHost:
    return IncompatibleBackupHost(
        f"Instance '{instance.instance_id}' ({instance.name}) runs {found} on "
        f"{architecture or 'an unknown architecture'}, which the backup-host agent does not "
        f"support. Supported: {supported_os_text()}. Use a VM with one of these as the backup host."
    )


class HostOs(NamedTuple):
    """The OS recorded for a backup host, and who said so."""

    name: str
    version: str
    architecture: str
    source: str  # "cloud", "image <id>" or "admin"


def _image_of(client: BingoCloudClient, instance: Instance) -> Image | None:
    if not instance.image_id:
        return None
    try:
        return next(iter(client.describe_images([instance.image_id])), None)
    except CloudError:
        return None  # no image to read: the admin confirms the OS instead


def backup_host_os(instance: Instance, image: Image | None, confirmed_os: str | None = None) -> HostOs:
    """The instance's OS from the cloud, else from its image, else `confirmed_os` (the admin's).

    Raises `IncompatibleBackupHost` when the cloud or image says the OS is not supported, and
    `RegistrationError` when nobody says which OS it is, or the admin's word contradicts the cloud.
    """
    arch = _architecture(instance.architecture)
    if image is not None and image.architecture:
        arch = _architecture(image.architecture)
    windows = "windows" in (instance.platform.lower(), (image.platform if image else "").lower())
    if windows or arch not in SUPPORTED_ARCHITECTURES:
        found = f"{instance.os_name} {instance.os_version}".strip() or ("Windows" if windows else "its OS")
        raise _refuse(instance, found, arch)
    reported: HostOs | None = None
    if instance.os_name:
        check_backup_host_os(instance)
        reported = HostOs(instance.os_name, instance.os_version, arch, "cloud")
    elif image is not None:
        named = os_from_text(" ".join((image.os_name, image.name, image.description)))
        if named is not None:
            reported = HostOs(named.name, named.version, arch, f"image {image.image_id}")
    confirmed = os_from_text(confirmed_os) if confirmed_os else None
    if confirmed_os and confirmed is None:
        raise RegistrationError(
            f"--os {confirmed_os!r} is not an OS the backup-host agent supports: give one of "
            f'{supported_os_text()}, written like "Ubuntu 20.04".'
        )
    if reported is not None:
        said = os_from_text(f"{reported.name} {reported.version}")
        if confirmed is not None and said != confirmed:
            raise RegistrationError(
                f"BingoCloud says instance '{instance.instance_id}' runs {reported.name} {reported.version} "
                f"({reported.source}), but --os says {confirmed}. Check the VM and register it without --os, "
                "or with the OS it really runs."
            )
        return reported
    if confirmed is not None:
        return HostOs(confirmed.name, confirmed.version, arch, "admin")
    image_text = f"image {image.image_id} ({image.name or 'no name'})" if image else "no readable image"
    raise RegistrationError(
        f"BingoCloud does not say which OS instance '{instance.instance_id}' ({instance.name}) runs "
        f"(no osName on the instance; {image_text} names no supported OS). If it runs one of "
        f"{supported_os_text()}, confirm it: `bingobackup host register {instance.instance_id} "
        f'--cloud CLOUD --os "Ubuntu 20.04"`. The worker checks the real OS when it starts on the host.'
    )


def register_backup_host(
    store: RegistryStore,
    user: User,
    cloud: str,
    instance_id: str,
    *,
    client: BingoCloudClient | None = None,
    confirmed_os: str | None = None,
) -> BackupHost:
    """Admin only: record instance `instance_id` of `cloud` as a (not yet activated) backup host.

    `confirmed_os` ("Ubuntu 20.04") is the admin's word for an OS the cloud does not report.
    """
    require_admin(user, f"register backup host '{instance_id}'")
    registration = find_cloud(store, cloud)
    existing = store.get_host(instance_id)
    if existing is not None:
        raise RegistrationError(
            f"Instance '{instance_id}' is already registered as a backup host of cloud '{existing.cloud}'."
        )
    client = client or registration.client()
    instance = _read_instance(registration, instance_id, client)
    image = None if instance.os_name else _image_of(client, instance)
    host_os = backup_host_os(instance, image, confirmed_os)
    host = BackupHost(
        instance_id=instance.instance_id,
        cloud=registration.name,
        cluster_id=instance.cluster_id,
        node_id=instance.node_id,
        name=instance.name,
        os_name=host_os.name,
        os_version=host_os.version,
        architecture=host_os.architecture,
        os_source=host_os.source,
    )
    store.save_host(host)
    return host


def _os_release_values(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip().strip("\"'")
    return values


def check_local_os(os_release: str, machine: str, centos_release: str = "") -> SupportedOs:
    """The supported OS that /etc/os-release text (and the machine's architecture) describes.

    CentOS writes only the major version there (VERSION_ID="7"); its point release is in
    /etc/centos-release ("CentOS Linux release 7.6.1810 (Core)"), passed as `centos_release`.
    Raises `IncompatibleBackupHost` naming what was found and the list.
    """
    values = _os_release_values(os_release)
    name = values.get("NAME", "") or values.get("ID", "")
    version = values.get("VERSION_ID", "")
    point_release = re.search(r"\d+(?:\.\d+)+", centos_release)
    if values.get("ID", "").lower() == "centos" and point_release:
        version = point_release.group()
    arch = _architecture(machine)
    found = next(
        (
            os
            for os in SUPPORTED_BACKUP_HOST_OS
            if os.name.lower() in (values.get("ID", "").lower(), name.split(" ", 1)[0].lower())
            and _version_matches(version, os.version)
        ),
        None,
    )
    if found is not None and arch in SUPPORTED_ARCHITECTURES:
        return found
    shown = values.get("PRETTY_NAME") or f"{name} {version}".strip() or "an OS /etc/os-release does not name"
    if not version or version not in shown:
        shown += f" (version {version or 'unknown'})"
    raise IncompatibleBackupHost(
        f"This machine runs {shown} on {arch or 'an unknown architecture'}, "
        f"which the backup-host agent does not support. Supported: {supported_os_text()}. Run the worker on "
        "a backup-host VM with one of these."
    )


def read_local_os(root: Path = Path("/")) -> SupportedOs:
    """`check_local_os` of this machine (its /etc/os-release, /etc/centos-release, architecture)."""

    def read(path: str) -> str:
        try:
            return (root / path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    os_release = read("etc/os-release") or read("usr/lib/os-release")
    return check_local_os(os_release, platform.machine(), read("etc/centos-release"))


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
