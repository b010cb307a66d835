"""Register, modify, re-configure, tag and deregister BingoClouds.

Credentials are verified against the API before anything is saved, so a stored cloud
always worked at least once. Messages name the address, port and SSL setting; never a key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import SecretStr, ValidationError

from bingobackup.cloud.errors import (
    CloudAuthError,
    CloudClockError,
    CloudError,
    CloudNotFoundError,
    CloudUnreachableError,
)
from bingobackup.cloud.signing import mask_key
from bingobackup.resources.access import find_cloud, may_use, require_admin, require_authorized
from bingobackup.resources.errors import CloudInUse, RegistrationError
from bingobackup.resources.models import CloudRegistration, User, check_slug, default_port
from bingobackup.resources.store import RegistryStore

# Registration is interactive: a wrong address should fail in seconds, not after the
# client's default minute of retries.
VERIFY_RETRY_WINDOW_SECONDS = 10.0
VERIFY_TIMEOUT_SECONDS = 10.0


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def verify_cloud(
    cloud: CloudRegistration, *, retry_window_seconds: float = VERIFY_RETRY_WINDOW_SECONDS
) -> None:
    """Call DescribeClusters and look up the backup host; raise `RegistrationError` on failure."""
    where = cloud.describe_connection()
    try:
        client = cloud.client(
            retry_window_seconds=retry_window_seconds,
            timeout_seconds=min(VERIFY_TIMEOUT_SECONDS, max(retry_window_seconds, 1.0)),
        )
        if not any(True for _ in client.describe_clusters()):
            raise RegistrationError(
                f"BingoCloud at {where} accepted the keys but reports no cluster; "
                "check that the Access Key belongs to an account that can see the clusters."
            )
        client.get_instance(cloud.backup_host)
    except CloudClockError as exc:
        raise RegistrationError(
            f"BingoCloud at {where} refused the request time: {exc.message} The request was stamped "
            f"{exc.timestamp}, this host's clock written as wall time in the cloud's timezone "
            f"{cloud.timezone}. If the cloud's clock runs in another zone, give it with --timezone ZONE "
            "(an IANA name such as Asia/Shanghai or UTC); if the zone is right, correct this host's "
            "clock (NTP). Nothing was saved."
        ) from None
    except CloudAuthError as exc:
        raise RegistrationError(_auth_refusal(cloud, exc.code, where)) from None
    except CloudUnreachableError as exc:
        raise RegistrationError(
            f"Cannot reach BingoCloud at {where}: {_unreachable_reason(exc)}. Check the address and port, and "
            f"whether the API speaks {'HTTPS' if cloud.ssl else 'plain HTTP'} "
            f"(SSL on uses port {default_port(True)} by default, off uses {default_port(False)})."
        ) from None
    except CloudNotFoundError:
        raise RegistrationError(
            f"The backup host instance '{cloud.backup_host}' does not exist in BingoCloud at {where}. "
            "Give the instance id of the backup-host VM (browse with `bingobackup resources browse`)."
        ) from None
    except CloudError as exc:
        raise RegistrationError(
            f"BingoCloud at {where} answered with an error while verifying the registration: "
            f"{exc.code or 'error'}: {exc.message}."
        ) from None


def _unreachable_reason(exc: CloudUnreachableError) -> str:
    return exc.message.removeprefix(f"cannot reach {exc.endpoint}: ")


def _auth_refusal(cloud: CloudRegistration, code: str, where: str) -> str:
    if code == "SignatureDoesNotMatch":
        reason = f"the Secret Key does not match Access Key '{mask_key(cloud.access_key)}'"
    elif code == "AuthFailure":
        reason = f"the Access Key '{mask_key(cloud.access_key)}' is not known to this cloud"
    else:
        reason = f"the Access Key / Secret Key was refused ({code})"
    return (
        f"BingoCloud at {where} refused the credentials: {reason}. "
        "Nothing was saved; check the Access Key and Secret Key and try again."
    )


def parse_cloud_registration(data: Mapping[str, Any]) -> CloudRegistration:
    """Build a registration, turning pydantic's report into one readable line per field."""
    try:
        return CloudRegistration.model_validate(dict(data))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'registration'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        )
        raise RegistrationError(f"Invalid cloud registration: {problems}.") from None


def _refuse_if_used(store: RegistryStore, name: str, action: str, force: bool) -> None:
    jobs = store.jobs_using_cloud(name)
    if jobs and not force:
        raise CloudInUse(
            f"Cannot {action} cloud '{name}': it is used by job(s) {', '.join(sorted(jobs))}. "
            "Delete or edit those jobs first, or add --force (the jobs will then fail until "
            "they point at a registered cloud).",
            jobs=sorted(jobs),
        )


def register_cloud(
    store: RegistryStore,
    user: User,
    registration: CloudRegistration | Mapping[str, Any],
    *,
    retry_window_seconds: float = VERIFY_RETRY_WINDOW_SECONDS,
) -> CloudRegistration:
    """Admin only. Verifies the credentials and backup host, then saves the cloud."""
    cloud = (
        registration
        if isinstance(registration, CloudRegistration)
        else parse_cloud_registration(registration)
    )
    require_admin(user, f"register cloud '{cloud.name}'")
    existing = store.get_cloud(cloud.name)
    if existing is not None:
        raise RegistrationError(
            f"A cloud named '{cloud.name}' is already registered ({existing.describe_connection()}). "
            "Choose another name, or change that cloud with `bingobackup cloud settings`."
        )
    verify_cloud(cloud, retry_window_seconds=retry_window_seconds)
    store.save_cloud(cloud)
    return cloud


def list_clouds(store: RegistryStore, user: User) -> list[CloudRegistration]:
    """The clouds `user` may use (all of them for an admin)."""
    return [c for c in store.list_clouds() if may_use(user, c.groups)]


# Pool traffic never had a network of its own: bingobackup opens no connection to a
# directory pool (the kernel's NFS/CIFS/SAN mount does), and the host's routing table
# chooses the interface of every connection it does open (S3). An option that only
# validated would promise a separation nothing enforces.
DATA_NETWORK_REFUSED = (
    "A data network is no longer set in bingobackup: pool traffic goes out of the interface the "
    "backup host's routing table picks for the pool's address, and bingobackup cannot pick "
    "another (directory and LAN-free pools are mounted by the host's kernel). To keep backup "
    "data on a network, give the backup host an interface on it and mount the pool, or route "
    "the object store's address, through that interface."
)


def modify_cloud(
    store: RegistryStore,
    user: User,
    name: str,
    *,
    new_name: str | None = None,
    data_network: str | None = UNSET,
) -> CloudRegistration:
    """Admin only: rename (refused while jobs use the old name). A data network is refused
    (`DATA_NETWORK_REFUSED`); an empty one clears what an older version stored."""
    require_admin(user, f"modify cloud '{name}'")
    cloud = find_cloud(store, name)
    if data_network is not UNSET:
        if data_network:
            raise RegistrationError(DATA_NETWORK_REFUSED)
        cloud.data_network = None
    if new_name is not None and new_name != name:
        try:
            check_slug(new_name, "Cloud name")
        except ValueError as exc:
            raise RegistrationError(str(exc)) from None
        if store.get_cloud(new_name) is not None:
            raise RegistrationError(f"A cloud named '{new_name}' is already registered; choose another name.")
        _refuse_if_used(store, name, "rename", force=False)
        cloud.name = new_name
        store.save_cloud(cloud)
        # Backup hosts refer to their cloud by name.
        for host in store.list_hosts():
            if host.cloud == name:
                host.cloud = new_name
                store.save_host(host)
        store.delete_cloud(name)
    else:
        store.save_cloud(cloud)
    return cloud


def update_cloud_settings(
    store: RegistryStore,
    user: User,
    name: str,
    *,
    address: str | None = None,
    port: int | None = None,
    ssl: bool | None = None,
    access_key: str | None = None,
    secret_key: str | SecretStr | None = None,
    ca_file: str | None = UNSET,
    verify_tls: bool | None = None,
    backup_host: str | None = None,
    timezone: str | None = None,
    retry_window_seconds: float = VERIFY_RETRY_WINDOW_SECONDS,
) -> CloudRegistration:
    """Admin only: change how the cloud is reached (and the zone its clock runs in); the result
    is re-verified before saving."""
    require_admin(user, f"change the settings of cloud '{name}'")
    current = find_cloud(store, name)
    data = current.model_dump()
    data["secret_key"] = current.secret_key
    changes: dict[str, Any] = {
        "address": address,
        "ssl": ssl,
        "access_key": access_key,
        "secret_key": secret_key,
        "verify_tls": verify_tls,
        "backup_host": backup_host,
        "timezone": timezone,
    }
    data.update({k: v for k, v in changes.items() if v is not None})
    if ca_file is not UNSET:
        data["ca_file"] = ca_file
    if port is not None:
        data["port"] = port
    elif ssl is not None and current.port == default_port(current.ssl):
        # The port followed the old SSL default, so it follows the new one.
        data["port"] = 0
    updated = parse_cloud_registration(data)
    verify_cloud(updated, retry_window_seconds=retry_window_seconds)
    store.save_cloud(updated)
    return updated


def deregister_cloud(store: RegistryStore, user: User, name: str, *, force: bool = False) -> list[str]:
    """Admin only. Refused while jobs use the cloud unless `force`.

    Removes the cloud's backup hosts with it; returns their instance ids.
    """
    require_admin(user, f"deregister cloud '{name}'")
    find_cloud(store, name)
    _refuse_if_used(store, name, "deregister", force=force)
    removed = [h.instance_id for h in store.list_hosts() if h.cloud == name]
    for instance_id in removed:
        store.delete_host(instance_id)
    store.delete_cloud(name)
    return removed


def tag_cloud(
    store: RegistryStore,
    user: User,
    name: str,
    *,
    add: Mapping[str, str] | None = None,
    remove: Sequence[str] = (),
) -> CloudRegistration:
    """Add or overwrite tags from `add`, then drop the keys in `remove`.

    Tags are labels on a resource the user can see, so an authorized operator may tag too.
    """
    cloud = find_cloud(store, name)
    require_authorized(user, "cloud", cloud.name, cloud.groups)
    tags = dict(cloud.tags)
    for key, value in (add or {}).items():
        if not key.strip():
            raise RegistrationError("A tag key must not be empty.")
        tags[key.strip()] = value
    for key in remove:
        tags.pop(key, None)
    cloud.tags = tags
    store.save_cloud(cloud)
    return cloud
