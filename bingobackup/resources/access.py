"""Who may do what: admins manage, operators use what is authorized to one of their groups.

Every place that uses a cloud or backup host on behalf of a user goes through
`cloud_for` / `backup_host_for`, so the rule holds everywhere a resource is used.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Literal

from bingobackup.resources.errors import AccessDenied, ResourceError, ResourceNotFound
from bingobackup.resources.models import BackupHost, CloudRegistration, User
from bingobackup.resources.store import RegistryStore

ResourceKind = Literal["cloud", "host", "pool"]

# What an admin runs to grant access; quoted in refusals so the operator can ask for it.
AUTHORIZE_COMMANDS: dict[str, str] = {
    "cloud": "bingobackup cloud authorize {name} --group {group}",
    "host": "bingobackup host authorize {name} --group {group}",
    "pool": "bingobackup pool authorize {name} --group {group}",
}
KIND_LABELS: dict[str, str] = {"cloud": "cloud", "host": "backup host", "pool": "pool"}


def _groups_text(groups: Iterable[str]) -> str:
    listed = ", ".join(sorted(groups))
    return listed or "none"


def require_admin(user: User, action: str) -> None:
    """Refuse `action` (e.g. "activate backup host i-1") unless `user` is an admin."""
    if not user.is_admin:
        raise AccessDenied(
            f"User '{user.name}' (role {user.role}) may not {action}: only admins may. Ask an admin to do it."
        )


def may_use(user: User, groups: list[str]) -> bool:
    """Admins use everything; an operator what is authorized to one of its groups."""
    return user.is_admin or bool(set(user.groups) & set(groups))


def require_authorized(
    user: User, resource_kind: ResourceKind, resource_name: str, groups: list[str]
) -> None:
    """Refuse unless `user` is an admin or shares a group with the resource's `groups`."""
    if may_use(user, groups):
        return
    label = KIND_LABELS[resource_kind]
    wanted_group = user.groups[0] if user.groups else "GROUP"
    command = AUTHORIZE_COMMANDS[resource_kind].format(name=resource_name, group=wanted_group)
    raise AccessDenied(
        f"User '{user.name}' (groups: {_groups_text(user.groups)}) is not authorized to use "
        f"{label} '{resource_name}' (authorized groups: {_groups_text(groups)}). "
        f"Ask an admin to run `{command}`."
    )


def not_found(
    kind: str,
    wanted: str,
    known: Iterable[str],
    how_to_list: str,
    error: type[ResourceError] = ResourceNotFound,
) -> ResourceError:
    """A not-found error naming `wanted` and the closest known names."""
    close = difflib.get_close_matches(wanted, sorted(set(known)), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return error(f"No {kind} named '{wanted}'.{hint} List them with `{how_to_list}`.")


def find_cloud(store: RegistryStore, name: str) -> CloudRegistration:
    cloud = store.get_cloud(name)
    if cloud is None:
        known = [c.name for c in store.list_clouds()]
        raise not_found("registered cloud", name, known, "bingobackup cloud list")
    return cloud


def find_host(store: RegistryStore, instance_id: str) -> BackupHost:
    host = store.get_host(instance_id)
    if host is None:
        known = [h.instance_id for h in store.list_hosts()]
        raise not_found("registered backup host", instance_id, known, "bingobackup host list")
    return host


def cloud_for(store: RegistryStore, user: User, name: str) -> CloudRegistration:
    """The registered cloud `name`, if `user` may use it."""
    cloud = find_cloud(store, name)
    require_authorized(user, "cloud", cloud.name, cloud.groups)
    return cloud


def backup_host_for(
    store: RegistryStore, user: User, instance_id: str, *, require_activated: bool = True
) -> BackupHost:
    """The backup host `instance_id`, if `user` may use it (and, by default, it is activated)."""
    host = find_host(store, instance_id)
    require_authorized(user, "host", host.instance_id, host.groups)
    if require_activated and not host.activated:
        raise AccessDenied(
            f"Backup host '{host.instance_id}' ({host.name}) is registered but not activated. "
            f"Ask an admin to run `bingobackup host activate {host.instance_id}`."
        )
    return host
