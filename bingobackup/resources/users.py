"""Users and their groups.

A fresh install has no users: the local operator then acts as the built-in admin
(`LOCAL_ADMIN`), which is how the embedded single-machine default works. Once a user exists,
callers must say who they are.
"""

from __future__ import annotations

from bingobackup.resources.access import not_found, require_admin
from bingobackup.resources.errors import RegistrationError, ResourceError
from bingobackup.resources.models import Role, User
from bingobackup.resources.store import RegistryStore

LOCAL_ADMIN = User(name="admin", role="admin", groups=[])


def resolve_user(store: RegistryStore, name: str | None) -> User:
    """The acting user: `name` from the store, or `LOCAL_ADMIN` when no user is registered."""
    users = store.list_users()
    if name is None:
        if not users:
            return LOCAL_ADMIN
        raise ResourceError(
            "Users are registered, so say who you are: set BINGOBACKUP_USER or pass --user "
            f"(registered: {', '.join(u.name for u in users)})."
        )
    user = store.get_user(name)
    if user is None:
        if not users and name == LOCAL_ADMIN.name:
            return LOCAL_ADMIN
        raise not_found("user", name, [u.name for u in users], "bingobackup user list")
    return user


def create_user(store: RegistryStore, actor: User, name: str, role: Role, groups: list[str]) -> User:
    """Admin only; refuses a duplicate name."""
    require_admin(actor, f"create user '{name}'")
    if store.get_user(name) is not None:
        raise RegistrationError(
            f"A user named '{name}' already exists. Change its groups with `bingobackup user groups`."
        )
    user = User(name=name, role=role, groups=groups)
    store.save_user(user)
    return user


def set_user_groups(store: RegistryStore, actor: User, name: str, groups: list[str]) -> User:
    """Admin only: replace the user's groups."""
    require_admin(actor, f"change the groups of user '{name}'")
    user = store.get_user(name)
    if user is None:
        raise not_found("user", name, [u.name for u in store.list_users()], "bingobackup user list")
    user.groups = groups
    store.save_user(user)
    return user


def delete_user(store: RegistryStore, actor: User, name: str) -> None:
    require_admin(actor, f"delete user '{name}'")
    if store.get_user(name) is None:
        raise not_found("user", name, [u.name for u in store.list_users()], "bingobackup user list")
    store.delete_user(name)
