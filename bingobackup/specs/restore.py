"""The restore job spec (DESIGN.md §4): the typed parameter of the restore flows.

One spec restores one or more VMs (`vms`), or chosen disks of them (`kind: disk`). The
short form with one `source` and one `target` is the same as a one-item `vms` list. Every
target field left out takes the backed-up VM's value; `batch` sets a value for every VM of
the spec at once (the guide's batch editing), and a VM's own `target` wins over `batch`.

Version 1 is the current version. When the model changes, bump `RESTORE_SPEC_VERSION`, add
a migration to `RESTORE_MIGRATIONS`, and keep the old spec in `tests/fixtures/specs/`. The
model migrates by itself whenever it is validated (`VersionedSpec`), so restore jobs stored
as deployments keep running after an upgrade (the guide's FAQ 8.1).
"""

from __future__ import annotations

import ipaddress
import re
import string
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bingobackup.mover.ratelimit import RateSchedule
from bingobackup.specs.job import STALL_MINUTES, Hook, StallMinutes
from bingobackup.specs.loading import checked_job_name, load_spec
from bingobackup.specs.schedule import ImmediateSchedule, ManualSchedule, OnceSchedule
from bingobackup.specs.versioning import Migration, SpecVersioning, VersionedSpec, version_field

RESTORE_SPEC_VERSION = 1
RESTORE_MIGRATIONS: dict[int, Migration] = {}  # version n → n+1

_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")

_RESTORE_SCHEDULE_KINDS = ("immediate", "once", "manual")
_DISK_NAME_FIELDS = ("vm", "disk", "n")
RestoreSchedule = Annotated[ImmediateSchedule | OnceSchedule | ManualSchedule, Field(discriminator="kind")]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RestoreSource(_Spec):
    vm: str = Field(min_length=1, description="VM name or instance id as backed up")
    set: str = Field(default="latest", min_length=1, description="backup set id, or 'latest'")


class DiskTarget(_Spec):
    volume: str = Field(min_length=1, description="volume id of the backed-up disk")
    name: str | None = Field(default=None, description="name of the new volume")
    storage: str | None = Field(default=None, description="storage id of the new volume")


class NicTarget(_Spec):
    index: int = Field(ge=0, le=15, description="device index of the backed-up NIC")
    subnet: str | None = Field(default=None, description="subnet id (its VPC is the target network)")
    ip: str = Field(default="keep", description="keep | auto | an IPv4 address")
    mac: str = Field(default="keep", description="keep | auto | a MAC address")
    security_groups: list[str] | None = Field(default=None, description="security group ids")
    primary: bool = False

    @model_validator(mode="before")
    @classmethod
    def _one_group(cls, value: Any) -> Any:
        # `security_group: sg-1` is the form the guide's one-group dialog suggests.
        if isinstance(value, dict) and "security_group" in value:
            value = dict(value)
            group = value.pop("security_group")
            if group is not None:
                value.setdefault("security_groups", [group])
        return value

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        if value not in ("keep", "auto"):
            try:
                ipaddress.IPv4Address(value)
            except ValueError:
                raise ValueError(f"ip must be keep, auto or an IPv4 address, got {value!r}") from None
        return value

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str) -> str:
        if value not in ("keep", "auto") and not _MAC.match(value):
            raise ValueError(f"mac must be keep, auto or a MAC address aa:bb:cc:dd:ee:ff, got {value!r}")
        return value.lower()


class VmTarget(_Spec):
    """Where and how one VM comes back; None means the backed-up VM's value."""

    name: str | None = None
    name_prefix: str = ""
    name_suffix: str = ""
    node: str | None = Field(default=None, description="node id (name@ip) to run the new VM on")
    cpu: int | None = Field(default=None, ge=1, le=256)
    memory_mib: int | None = Field(default=None, ge=64)
    instance_type: str | None = None
    storage: str | None = Field(default=None, description="storage of every disk not given its own")
    disks: list[DiskTarget] = Field(default_factory=list)
    nics: list[NicTarget] = Field(default_factory=list)
    attach_to: str | None = Field(
        default=None, description="disk restore: 'original' (default) or the instance id to attach to"
    )

    @model_validator(mode="after")
    def _unique(self) -> VmTarget:
        volumes = [d.volume for d in self.disks]
        if len(volumes) != len(set(volumes)):
            raise ValueError(f"a disk is listed twice in target.disks: {volumes}")
        indexes = [n.index for n in self.nics]
        if len(indexes) != len(set(indexes)):
            raise ValueError(f"a NIC index is listed twice in target.nics: {indexes}")
        if sum(n.primary for n in self.nics) > 1:
            raise ValueError("only one NIC can be primary")
        return self


class BatchTarget(_Spec):
    """Values for every VM of the spec (a VM's own target wins)."""

    name_prefix: str = ""
    name_suffix: str = ""
    node: str | None = None
    cpu: int | None = Field(default=None, ge=1, le=256)
    memory_mib: int | None = Field(default=None, ge=64)
    instance_type: str | None = None
    storage: str | None = None
    subnet: str | None = None
    security_groups: list[str] | None = None
    ip: Literal["keep", "auto"] | None = None
    mac: Literal["keep", "auto"] | None = None
    attach_to: str | None = None
    disk_name: str | None = Field(
        default=None,
        description="new name of every restored disk not named in target.disks: a pattern of {vm} "
        "(the new VM's name; the backed-up VM's in a disk restore), {disk} (the backed-up disk's "
        "name) and {n} (its place among the VM's disks, 0 = system disk), e.g. 'dr-{disk}'",
    )

    @field_validator("disk_name")
    @classmethod
    def _disk_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
            unknown = fields - set(_DISK_NAME_FIELDS)
            if unknown:
                raise ValueError(
                    f"unknown placeholder(s) {', '.join('{' + f + '}' for f in sorted(unknown))}"
                )
            value.format(vm="vm", disk="disk", n=0)
        except (ValueError, IndexError) as error:
            raise ValueError(
                f"disk_name {value!r} is not a pattern of {{vm}}, {{disk}} and {{n}}: {error}"
            ) from None
        if not fields & {"disk", "n"}:
            # Without one of them every disk of a VM would get the same name.
            raise ValueError(
                f"disk_name {value!r} needs {{disk}} or {{n}} so a VM's disks get different names"
            )
        return value

    def disk_name_for(self, vm: str, disk: str, n: int) -> str | None:
        """The batch name of a VM's disk `n` (named `disk`), or None without a batch rule."""
        return self.disk_name.format(vm=vm, disk=disk, n=n) if self.disk_name else None


class VmRestore(_Spec):
    source: RestoreSource
    target: VmTarget = Field(default_factory=VmTarget)


class RestoreOptions(_Spec):
    parallel_vms: int = Field(default=2, ge=1, le=64)
    parallel_vms_per_node: int = Field(default=2, ge=1, le=64)
    parallel_disks_per_vm: int = Field(default=2, ge=1, le=64)
    channels: int = Field(default=2, ge=1, le=32, description="writer threads per disk")
    reconnect_minutes: int = Field(default=10, ge=1, le=60)
    resume_buffer_mib: int = Field(default=10, ge=1, le=4096)
    transfer_limits: RateSchedule = Field(
        default_factory=RateSchedule, description="bytes read from the pool"
    )
    write_limits: RateSchedule = Field(default_factory=RateSchedule, description="disk writes")
    precondition: Hook | None = None
    pre_script: Hook | None = None
    post_script: Hook | None = None
    stall_minutes: StallMinutes = STALL_MINUTES
    disc_images: str | None = Field(
        default=None,
        description="optical pool: one more directory holding disc images (ISO files read back from the discs)",
    )


class RestoreSpec(VersionedSpec):
    versioning: ClassVar[SpecVersioning] = SpecVersioning(
        RESTORE_SPEC_VERSION, RESTORE_MIGRATIONS, "Restore spec"
    )

    version: int = version_field(RESTORE_SPEC_VERSION)
    name: str = Field(description="restore job name: letters, digits, '.', '_' and '-'")
    kind: Literal["vm", "disk"] = "vm"
    cloud: str
    backup_host: str = Field(description="instance id of an activated backup host in the TARGET cluster")
    cluster: str | None = Field(
        default=None, description="target cluster (name or id); default: the backup host's cluster"
    )
    pool: str
    vms: list[VmRestore] = Field(min_length=1)
    batch: BatchTarget = Field(default_factory=BatchTarget)
    same_name: Literal["suffix", "skip"] = "suffix"
    power_on: bool = True
    schedule: RestoreSchedule = Field(default_factory=ImmediateSchedule)
    options: RestoreOptions = Field(default_factory=RestoreOptions)

    @classmethod
    def _current_form(cls, data: dict[str, Any]) -> dict[str, Any]:
        # The short form: one `source` (and `target`) is a one-item `vms` list.
        if "source" in data:
            if "vms" in data:
                raise ValueError("give either source/target (one VM) or vms (a list), not both")
            one = {"source": data.pop("source")}
            if "target" in data:
                one["target"] = data.pop("target")
            data["vms"] = [one]
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return checked_job_name(value, "restore job")

    @field_validator("schedule", mode="before")
    @classmethod
    def _restore_schedule_kind(cls, value: Any) -> Any:
        # The guide offers restores only these three: say so rather than pydantic's tag error.
        kind = value.get("kind") if isinstance(value, dict) else None
        if kind is not None and kind not in _RESTORE_SCHEDULE_KINDS:
            raise ValueError(
                f"a restore job runs immediate, once or manual, not {kind!r} (recurring schedules are "
                "for backup jobs); use kind: immediate, once (with at:) or manual"
            )
        return value


def load_restore_spec(source: str | Path | dict[str, Any]) -> RestoreSpec:
    """A restore spec from a YAML file, YAML text or a mapping, migrated to the current version."""
    return load_spec(source, RestoreSpec)
