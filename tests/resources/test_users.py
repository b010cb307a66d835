"""Users: the built-in local admin, creation by admins only, clear refusals."""

from __future__ import annotations

import pytest

from bingobackup.resources.errors import AccessDenied, RegistrationError, ResourceError, ResourceNotFound
from bingobackup.resources.models import User
from bingobackup.resources.store import InMemoryRegistryStore
from bingobackup.resources.users import LOCAL_ADMIN, create_user, delete_user, resolve_user, set_user_groups


def test_fresh_install_acts_as_local_admin(store: InMemoryRegistryStore) -> None:
    assert resolve_user(store, None) == LOCAL_ADMIN
    assert resolve_user(store, "admin") == LOCAL_ADMIN


def test_admin_creates_users_and_operators_cannot(store: InMemoryRegistryStore, admin: User) -> None:
    olga = create_user(store, admin, "olga", "operator", ["ops", " ops ", ""])
    assert olga.groups == ["ops"] and store.get_user("olga") == olga
    with pytest.raises(AccessDenied, match="User 'olga' \\(role operator\\) may not create user 'eve'"):
        create_user(store, olga, "eve", "admin", [])
    with pytest.raises(RegistrationError, match="'olga' already exists"):
        create_user(store, admin, "olga", "operator", [])
    assert set_user_groups(store, admin, "olga", ["dev"]).groups == ["dev"]
    with pytest.raises(AccessDenied):
        delete_user(store, olga, "olga")


def test_once_users_exist_the_caller_must_say_who_it_is(store: InMemoryRegistryStore, admin: User) -> None:
    create_user(store, admin, "olga", "operator", ["ops"])
    with pytest.raises(ResourceError, match="set BINGOBACKUP_USER or pass --user \\(registered: olga\\)"):
        resolve_user(store, None)
    with pytest.raises(ResourceNotFound, match=r"No user named 'olgaa'.*Did you mean 'olga'"):
        resolve_user(store, "olgaa")
    assert resolve_user(store, "olga").role == "operator"
