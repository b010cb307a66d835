"""The kinds of job a deployment can hold: backup, VM restore, disk restore.

Each kind is one flow. A job spec says which kind it is by its shape: a restore spec has
`kind: vm|disk` and `source`/`vms`, a backup spec has `content`. Specs stored in deployments
are read back through the same detection (and the kind's loader, which migrates old versions).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import Flow

from bingobackup.restore.verification import verification_code
from bingobackup.specs.job import BackupJobSpec, load_job_spec
from bingobackup.specs.loading import read_yaml
from bingobackup.specs.restore import RestoreSpec, load_restore_spec
from flows.backup import backup as backup_flow
from flows.backup import job_tag
from flows.restore import limits_name, restore_disk, restore_vm

JobSpec = BackupJobSpec | RestoreSpec


@dataclass(frozen=True)
class JobKind:
    """How a job of one kind becomes a deployment."""

    label: str  # what `job list` shows
    flow: Flow[Any, Any]
    entrypoint: str
    # The tag of the job's concurrency limit; its per-node and per-VM limits start with it.
    limit_tag: Callable[[str], str]

    @property
    def flow_name(self) -> str:
        return self.flow.name


def _restore_limit_tag(name: str) -> str:
    return job_tag(limits_name(name))


BACKUP = JobKind("backup", backup_flow, "flows.backup.backup", job_tag)
RESTORE_VM = JobKind("restore vm", restore_vm, "flows.restore.restore_vm", _restore_limit_tag)
RESTORE_DISK = JobKind("restore disk", restore_disk, "flows.restore.restore_disk", _restore_limit_tag)
JOB_KINDS = (BACKUP, RESTORE_VM, RESTORE_DISK)


def job_kind(spec: JobSpec) -> JobKind:
    if isinstance(spec, RestoreSpec):
        return RESTORE_VM if spec.kind == "vm" else RESTORE_DISK
    return BACKUP


def is_restore_data(data: Mapping[str, Any]) -> bool:
    """A restore spec's shape: `kind: vm|disk`, or a source/vms list, and no backup `content`."""
    if "content" in data:
        return False
    return data.get("kind") in ("vm", "disk") or "source" in data or "vms" in data


def load_any_spec(source: Path | Mapping[str, Any]) -> JobSpec:
    """A backup or restore spec from a YAML file or a mapping, migrated to its current version."""
    data = read_yaml(source) if isinstance(source, Path) else source
    if is_restore_data(data):
        return load_restore_spec(source if isinstance(source, Path) else dict(data))
    return load_job_spec(source if isinstance(source, Path) else dict(data))


def restore_code(spec: JobSpec) -> str | None:
    """The verification code a restore job's runs pause for; None for a backup job."""
    return verification_code(spec) if isinstance(spec, RestoreSpec) else None
