"""Registered resources: clouds, backup hosts and users.

These models cross every boundary (CLI input, Prefect Blocks, job specs), so validation
errors name the field and the rule. Secrets are `SecretStr`: their repr and str are masked.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from bingobackup.cloud.client import BingoCloudClient
from bingobackup.cloud.signing import DEFAULT_TIMEZONE, cloud_zone
from bingobackup.pools.kinds import PoolFormatName, PoolHome, PoolKindName, pool_kind
from bingobackup.specs.maintenance import PoolMaintenance
from bingobackup.specs.retention import RetentionPolicy
from bingobackup.storage.s3config import S3Settings

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
DEFAULT_HTTPS_PORT = 443
DEFAULT_HTTP_PORT = 80

Role = Literal["admin", "operator"]


def default_port(ssl: bool) -> int:
    """The guide's defaults: SSL on → 443, off → 80."""
    return DEFAULT_HTTPS_PORT if ssl else DEFAULT_HTTP_PORT


def check_slug(value: str, what: str) -> str:
    if not SLUG_PATTERN.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not allowed: use 1-63 lowercase letters, digits and dashes, "
            "starting and ending with a letter or digit (e.g. 'demo' or 'cloud-a')"
        )
    return value


def _clean_groups(groups: list[str]) -> list[str]:
    """Strip, drop empties and duplicates, keep the order given (the UI shows it)."""
    seen: dict[str, None] = {}
    for group in groups:
        name = group.strip()
        if name:
            seen.setdefault(name, None)
    return list(seen)


class ResourceModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CloudRegistration(ResourceModel):
    """A BingoCloud registered for backup (V7 and V9 share the same API)."""

    name: str = Field(description="Lowercase slug naming this cloud in jobs and the UI")
    address: str = Field(description="Host name or IP address of the BingoCloud API")
    port: int = Field(default=0, ge=0, le=65535, description="0 → 443 with SSL, 80 without")
    ssl: bool = False
    access_key: str = Field(min_length=1)
    secret_key: SecretStr
    ca_file: str | None = Field(default=None, description="Extra CA bundle for a private CA")
    verify_tls: bool = True
    data_network: str | None = Field(default=None, description="Network used for backup data")
    tags: dict[str, str] = Field(default_factory=dict)
    groups: list[str] = Field(default_factory=list, description="User groups authorized to use it")
    backup_host: str = Field(min_length=1, description="Instance id of the backup host used to register")
    # Registrations saved before this field load with the default, the zone BingoCloud ships with.
    timezone: str = Field(
        default=DEFAULT_TIMEZONE,
        description="IANA zone of the cloud's clock; request timestamps are written in it",
    )
    # No response field tells V7 from V9 (none in the public client, cloudmux), so the admin says.
    version: Literal[7, 9] | None = Field(
        default=None, description="BingoCloud major version (7 or 9); None: not given, taken as 9"
    )

    @field_validator("name")
    @classmethod
    def _name_is_slug(cls, value: str) -> str:
        return check_slug(value, "Cloud name")

    @field_validator("address")
    @classmethod
    def _address_is_host(cls, value: str) -> str:
        value = value.strip()
        if not value or "/" in value or " " in value:
            raise ValueError(
                f"address {value!r} must be a host name or IP address only "
                "(no scheme, path or port: use --port and --ssl for those)"
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        cloud_zone(value)
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("the Secret Key must not be empty")
        return value

    @field_validator("groups")
    @classmethod
    def _groups_clean(cls, value: list[str]) -> list[str]:
        return _clean_groups(value)

    @model_validator(mode="after")
    def _port_defaults_to_scheme(self) -> CloudRegistration:
        if self.port == 0:
            # object.__setattr__: validate_assignment would re-enter this validator.
            object.__setattr__(self, "port", default_port(self.ssl))
        return self

    @property
    def version_text(self) -> str:
        """V7 or V9, or "V9 (assumed)" when the admin did not say."""
        return f"V{self.version}" if self.version else "V9 (assumed)"

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.ssl else "http"
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{scheme}://{host}:{self.port}/"

    def describe_connection(self) -> str:
        """How the cloud is reached, for messages: address, port and SSL state, never keys."""
        return f"{self.address}:{self.port} (SSL {'on' if self.ssl else 'off'}, {self.endpoint})"

    def client(self, **kwargs: Any) -> BingoCloudClient:
        """A client of this cloud; `kwargs` go to `BingoCloudClient` (timeouts, retry window)."""
        return BingoCloudClient(
            self.endpoint,
            self.access_key,
            self.secret_key.get_secret_value(),
            verify=self.verify_tls,
            ca_file=self.ca_file,
            timezone=self.timezone,
            **kwargs,
        )


class BackupHost(ResourceModel):
    """A VM inside a registered cloud that runs our agent and reads snapshot volumes."""

    instance_id: str = Field(min_length=1)
    cloud: str
    cluster_id: str
    node_id: str
    name: str = ""
    os_name: str = ""
    os_version: str = ""
    architecture: str = ""
    os_source: str = Field(
        default="cloud",
        description="Who said which OS it runs: 'cloud' (the instance), 'image <id>', or 'admin' (host register --os)",
    )
    activated: bool = False
    groups: list[str] = Field(default_factory=list)
    device_root: str = Field(
        default="/",
        description="Where the agent sees this host's /dev/disk/by-id: '/' on the host itself; "
        "the simulator's STATE/hosts/<instance-id> for a simulated cloud",
    )

    @field_validator("groups")
    @classmethod
    def _groups_clean(cls, value: list[str]) -> list[str]:
        return _clean_groups(value)


class User(ResourceModel):
    """Admins activate and authorize; operators use resources authorized to their groups."""

    name: str = Field(min_length=1)
    role: Role = "operator"
    groups: list[str] = Field(default_factory=list)

    @field_validator("groups")
    @classmethod
    def _groups_clean(cls, value: list[str]) -> list[str]:
        return _clean_groups(value)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class PoolRegistration(ResourceModel):
    """A pool (存储池) registered for jobs: where it is and the passphrase that opens it."""

    name: str = Field(description="Lowercase slug naming this pool in jobs and the UI")
    kind: PoolKindName
    location: str = Field(description="Directory of the pool (object pools: s3://bucket/prefix)")
    passphrase: SecretStr | None = Field(default=None, description="Opens an encrypted pool")
    groups: list[str] = Field(default_factory=list, description="User groups authorized to use it")
    tags: dict[str, str] = Field(default_factory=dict)
    format: PoolFormatName | None = Field(
        default=None, description="On-pool format of object and LAN-free pools: dedup or standard"
    )
    s3: S3Settings | None = Field(default=None, description="Endpoint, bucket and keys of an object pool")
    backup_hosts: list[str] = Field(
        default_factory=list, description="LAN-free pools: ids of the backup hosts that see the storage"
    )
    library: str | None = Field(default=None, description="Tape pools: directory of the tape library")
    retention: RetentionPolicy | None = Field(
        default=None, description="Default retention of the jobs writing here that have none of their own"
    )
    maintenance: PoolMaintenance = Field(
        default_factory=PoolMaintenance,
        description="When prune, garbage collection and verify run (Prefect deployments), and on which host",
    )

    @model_validator(mode="after")
    def _kind_has_its_settings(self) -> PoolRegistration:
        spec = pool_kind(self.kind)
        if spec.storage == "s3" and self.s3 is None:
            raise ValueError(f"an {self.kind} pool needs its S3 settings (bucket, endpoint, keys)")
        if spec.storage != "s3" and self.s3 is not None:
            raise ValueError(f"S3 settings belong to object pools, not to a {self.kind} pool")
        if spec.has_library and not self.library:
            raise ValueError(f"a {self.kind} pool needs its tape library directory")
        if spec.needs_backup_hosts and not self.backup_hosts:
            raise ValueError("a LAN-free pool needs the ids of the backup hosts that see its storage")
        return self

    @property
    def on_pool_format(self) -> PoolFormatName:
        """How chunks are laid out on the pool: dedup or standard (tape and optical pools write
        each disk as a self-contained stream of standard pack records)."""
        return pool_kind(self.kind).format_of(self.format)

    def home(self) -> PoolHome:
        """Where the pool lives, for its kind's functions (pools/kinds.py)."""
        return PoolHome(self.name, self.location, self.s3, self.library, self.on_pool_format)

    @field_validator("name")
    @classmethod
    def _name_is_slug(cls, value: str) -> str:
        return check_slug(value, "Pool name")

    @field_validator("groups")
    @classmethod
    def _groups_clean(cls, value: list[str]) -> list[str]:
        return _clean_groups(value)
