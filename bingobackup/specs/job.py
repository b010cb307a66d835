"""The backup job spec (DESIGN.md §4): the typed parameter of the backup flow.

Version 2 is the current version (it added the optional `retention` section; version 1
specs migrate by getting none). When the model changes, bump `JOB_SPEC_VERSION`, add a
migration from the previous version to `JOB_MIGRATIONS`, and keep a stored old spec in
`tests/fixtures/specs/` that must keep loading. The model migrates by itself whenever it is
validated (`VersionedSpec`), so jobs stored as deployments keep running after an upgrade.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bingobackup.mover.ratelimit import RateSchedule
from bingobackup.specs.loading import checked_job_name, load_spec
from bingobackup.specs.retention import RetentionPolicy
from bingobackup.specs.schedule import ManualSchedule, Schedule
from bingobackup.specs.selection import ContentSelection, SelectionFilters
from bingobackup.specs.versioning import Migration, SpecVersioning, VersionedSpec, version_field
from bingobackup.units import parse_size

JOB_SPEC_VERSION = 2
# A run that stands still this long is stopped (bingobackup/watchdog.py): longer than the
# longest cloud wait's own time-out (an hour for a snapshot or a volume), so those report first.
STALL_MINUTES = 90.0
# Backup and restore options share it.
StallMinutes = Annotated[
    float,
    Field(
        gt=0,
        le=10080,
        description="a run in which no byte moves and no VM or disk finishes for this long is "
        "stopped and fails, naming what it waited on",
    ),
]


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 2 added `retention`; a version-1 job had none (it keeps every set, or the
    pool's default retention applies)."""
    data.pop("retention", None)
    return data


JOB_MIGRATIONS: dict[int, Migration] = {1: _v1_to_v2}  # version n → n+1


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Hook(_Spec):
    """A precondition, pre-script or post-script: a shell command with a time limit."""

    command: str = Field(min_length=1)
    timeout_seconds: int = Field(default=300, ge=1, le=86400)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"command": value} if isinstance(value, str) else value


class SkipIfFreeBelow(_Spec):
    """Do not back up a VM when a datastore it uses has free space ≤ these (guide table 2).

    Both set → both must hold to skip. `gib` is shorthand for `space` in GiB.
    """

    percent: float | None = Field(default=None, ge=0, le=100)
    space: str | None = Field(default=None, description="e.g. '500GiB' (KiB, MiB, GiB, TiB)")
    gib: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_space_form(self) -> SkipIfFreeBelow:
        if self.space is not None and self.gib is not None:
            raise ValueError("give the free-space threshold as 'space' or 'gib', not both")
        if self.space is not None:
            parse_size(self.space, "skip_if_free_below.space")
        return self

    @property
    def space_bytes(self) -> int | None:
        if self.space is not None:
            return parse_size(self.space, "space")
        return int(self.gib * (1 << 30)) if self.gib is not None else None


class RetryPolicy(_Spec):
    count: int = Field(default=3, ge=0, le=10, description="retries of the VMs that failed; 0 = none")
    interval_minutes: float = Field(default=10, ge=0, le=1440)


class BackupOptions(_Spec):
    compression: Literal["fast", "none"] = "fast"
    parallel_vms: int = Field(default=2, ge=1, le=64)
    parallel_vms_per_node: int = Field(default=2, ge=1, le=64)
    parallel_disks_per_vm: int = Field(default=2, ge=1, le=64)
    channels: int = Field(default=2, ge=1, le=32, description="reader/compressor threads per disk")
    skip_if_free_below: SkipIfFreeBelow | None = None
    power_off: bool = False
    dedup_mode: Literal["agent", "server"] = "agent"
    reconnect_minutes: int = Field(default=10, ge=1, le=60)
    resume_buffer_mib: int = Field(default=10, ge=1, le=4096)
    transfer_limits: RateSchedule = Field(default_factory=RateSchedule, description="bytes sent to the pool")
    read_limits: RateSchedule = Field(default_factory=RateSchedule, description="disk reads")
    precondition: Hook | None = None
    pre_script: Hook | None = None
    post_script: Hook | None = None
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    stall_minutes: StallMinutes = STALL_MINUTES


class BackupJobSpec(VersionedSpec):
    versioning: ClassVar[SpecVersioning] = SpecVersioning(JOB_SPEC_VERSION, JOB_MIGRATIONS, "Backup job spec")

    version: int = version_field(JOB_SPEC_VERSION)
    name: str = Field(description="job name: letters, digits, '.', '_' and '-'")
    cloud: str
    backup_host: str = Field(description="instance id of an activated backup host in the VMs' cluster")
    pool: str
    content: list[ContentSelection] = Field(min_length=1)
    filters: SelectionFilters = Field(default_factory=SelectionFilters)
    schedule: Schedule = Field(default_factory=ManualSchedule)
    options: BackupOptions = Field(default_factory=BackupOptions)
    retention: RetentionPolicy | None = Field(
        default=None,
        description="which backup sets of each VM `bingobackup prune` keeps (None: the pool's default "
        "retention, or keep everything); buckets in the schedule's time zone",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return checked_job_name(value, "job")


def load_job_spec(source: str | Path | dict[str, Any]) -> BackupJobSpec:
    """A backup job spec from a YAML file, YAML text or a mapping, migrated to the current version."""
    return load_spec(source, BackupJobSpec)
