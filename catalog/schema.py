"""The catalog's tables: one pydantic row model and one pyarrow schema per table.

Every Parquet file carries `schema_version` (the writer's `SCHEMA_VERSION`) and `commit_id`
(which write produced the row; see `catalog.writer`). The rule for changing this module is in
`docs/catalog.md`: add columns freely (nullable, at the end), never rename or remove one, never
change a column's type. Readers project every file onto the *current* schema, so a file written
before a column existed reads that column as NULL, and the row models give it its default.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import json
import sys
import threading
from collections.abc import Iterator
from typing import Any, Literal, TypeVar

import pyarrow as pa
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from bingobackup.cloud.models import Instance, Volume

SCHEMA_VERSION = 1

# `vm_backups.status` of a VM row `catalog rebuild` wrote after its file was lost: the VM was
# in the set (its disks say so), its configuration is gone, so it cannot be restored as a VM.
REBUILT_VM_STATUS = "unknown"

TIMESTAMP = pa.timestamp("us", tz="UTC")


class CatalogRecord(BaseModel):
    # extra="ignore": rows read back through the views carry `pool`, `commit_id` and
    # `schema_version`, and files from newer writers may carry columns this reader predates.
    model_config = ConfigDict(frozen=True, extra="ignore")


class BackupSetRecord(CatalogRecord):
    """One backup set: the commit record. A set exists for readers once this row is written."""

    set_id: str
    job_name: str
    pool: str = Field(description="pool name the writer knew; the views' `pool` is the reader's name")
    cloud: str
    started_at: AwareDatetime
    finished_at: AwareDatetime
    status: Literal["ok", "partial", "failed"] | str = "ok"
    vm_count: int = Field(default=0, ge=0, description="stamped by the writer from the VM rows")
    disk_count: int = Field(default=0, ge=0, description="stamped by the writer from the disk rows")
    bytes_read: int = Field(default=0, ge=0)
    bytes_sent: int = Field(default=0, ge=0)
    bytes_stored: int = Field(default=0, ge=0, description="bytes newly written to the pool by this set")
    logical_bytes: int = Field(default=0, ge=0, description="sum of disk sizes; stamped by the writer")
    format_version: int = Field(
        default=1, ge=1, description="the pool's on-pool format version (docs/format.md)"
    )
    run_id: str = ""
    backup_host: str = ""
    committed_at: AwareDatetime | None = Field(default=None, description="stamped by the writer")


class SecurityGroupEntry(CatalogRecord):
    group_id: str
    group_name: str = ""


class NicRecord(CatalogRecord):
    """A VM's network interface as it was at backup time (what a restore re-creates)."""

    device_index: int
    network_interface_id: str = ""
    vpc_id: str = ""
    subnet_id: str = ""
    private_ip_address: str = ""
    mac_address: str = ""
    security_groups: tuple[SecurityGroupEntry, ...] = ()


class VmBackupRecord(CatalogRecord):
    """One VM inside a backup set, with everything a restore needs to rebuild it."""

    set_id: str
    vm_id: str
    vm_name: str
    cluster_id: str = ""
    node_id: str = ""
    instance_type: str = ""
    cpu: int = 0
    memory_mib: int = 0
    image_id: str = ""
    platform: str = "linux"
    os_name: str = ""
    os_version: str = ""
    architecture: str = "x86_64"
    root_device_name: str = "/dev/vda"
    storage_id: str = ""
    state: str = Field(default="", description="power state when the backup started")
    nics: tuple[NicRecord, ...] = ()
    tags_json: str = Field(default="{}", description="the VM's tags as a JSON object")
    status: Literal["ok", "failed", "skipped"] | str = "ok"
    error: str = ""
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    bytes_read: int = Field(default=0, ge=0)
    bytes_sent: int = Field(default=0, ge=0)
    bytes_stored: int = Field(default=0, ge=0)

    @property
    def tags(self) -> dict[str, str]:
        return dict(json.loads(self.tags_json or "{}"))

    @classmethod
    def from_instance(cls, set_id: str, instance: Instance, **fields: Any) -> VmBackupRecord:
        """The record for `instance` as described by the cloud; `fields` adds status, counters, times."""
        nics = tuple(
            NicRecord(
                device_index=nic.device_index,
                network_interface_id=nic.network_interface_id,
                vpc_id=nic.vpc_id,
                subnet_id=nic.subnet_id,
                private_ip_address=nic.private_ip_address,
                mac_address=nic.mac_address,
                security_groups=tuple(
                    SecurityGroupEntry(group_id=g.group_id, group_name=g.group_name)
                    for g in nic.security_groups
                ),
            )
            for nic in sorted(instance.network_interfaces, key=lambda n: n.device_index)
        )
        return cls(
            set_id=set_id,
            vm_id=instance.instance_id,
            vm_name=instance.name,
            cluster_id=instance.cluster_id,
            node_id=instance.node_id,
            instance_type=instance.instance_type,
            cpu=instance.cpu,
            memory_mib=instance.memory_mib,
            image_id=instance.image_id,
            platform=instance.platform,
            os_name=instance.os_name,
            os_version=instance.os_version,
            architecture=instance.architecture,
            root_device_name=instance.root_device_name,
            storage_id=instance.storage_id,
            state=instance.state.name,
            nics=nics,
            tags_json=json.dumps(instance.tags, sort_keys=True),
            **fields,
        )


class DiskBackupRecord(CatalogRecord):
    """One disk of one VM inside a backup set. Its chunks are in the `chunks` table."""

    set_id: str
    vm_id: str
    volume_id: str
    name: str = ""
    size_bytes: int = Field(ge=0)
    is_root: bool = False
    device_name: str = ""
    storage_id: str = ""
    format: str = Field(default="raw", description="volume format on the cloud: raw | qcow2")
    serial: str = ""
    snapshot_id: str = ""
    bytes_read: int = Field(default=0, ge=0)
    bytes_sent: int = Field(default=0, ge=0)
    bytes_stored: int = Field(default=0, ge=0)
    chunk_size: int = Field(default=0, ge=0, description="stamped by the writer from the manifest")
    chunk_count: int = Field(default=0, ge=0, description="stamped by the writer from the manifest")
    data_bytes: int = Field(default=0, ge=0, description="non-zero bytes; stamped from the manifest")
    referenced_stored_bytes: int = Field(default=0, ge=0, description="sum of chunk stored sizes; stamped")

    @classmethod
    def from_volume(
        cls, set_id: str, vm_id: str, volume: Volume, device_name: str = "", **fields: Any
    ) -> DiskBackupRecord:
        """The record for `volume` as described by the cloud; `fields` adds counters and snapshot id."""
        return cls(
            set_id=set_id,
            vm_id=vm_id,
            volume_id=volume.volume_id,
            name=volume.name,
            size_bytes=volume.size_bytes,
            is_root=volume.is_root,
            device_name=device_name,
            storage_id=volume.storage_id,
            format=volume.format,
            serial=volume.serial,
            **fields,
        )


class RunError(CatalogRecord):
    """One failure of a run, summarised for people: what failed and why (never a secret)."""

    target: str = Field(description="what failed: a VM id, a volume id, or the job itself")
    message: str


class JobRunRecord(CatalogRecord):
    """The state of one run of a job. A run may be recorded several times; the newest row wins."""

    run_id: str
    job_name: str
    kind: Literal["backup", "restore"] | str = "backup"
    flow_run_id: str = ""
    pool: str = ""
    cloud: str = ""
    set_id: str = ""
    status: Literal["running", "completed", "partial", "failed", "cancelled"] | str
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    attempts: int = Field(default=1, ge=0)
    vms_ok: int = Field(default=0, ge=0)
    vms_failed: int = Field(default=0, ge=0)
    vms_skipped: int = Field(default=0, ge=0)
    bytes_read: int = Field(default=0, ge=0)
    bytes_sent: int = Field(default=0, ge=0)
    bytes_stored: int = Field(default=0, ge=0)
    errors: tuple[RunError, ...] = ()
    recorded_at: AwareDatetime | None = Field(default=None, description="stamped by the writer")


# -- Verifications (`bingobackup verify`) -------------------------------------------------------


class VerificationRecord(CatalogRecord):
    """What one verify run found for one backup set. Write-once like every catalog row: a
    later verify adds rows, and a set's newest row is its state (the `verifications` view
    keeps them all; `Catalog.list_sets` shows the newest)."""

    run_id: str = Field(description="the verify run; one file per run holds a row per set it verified")
    set_id: str
    pool: str = ""
    started_at: AwareDatetime
    verified_at: AwareDatetime = Field(description="when the run finished reading")
    status: Literal["ok", "damaged"] | str
    chunks_checked: int = Field(default=0, ge=0, description="distinct chunks of the set read and checked")
    bytes_checked: int = Field(default=0, ge=0, description="stored bytes of those chunks")
    damaged_chunks: int = Field(default=0, ge=0, description="damaged chunk references and manifests")
    sampled_percent: float = Field(default=100.0, gt=0, le=100)
    sample_seed: int | None = None
    flow_run_id: str = ""


# -- Arrow schemas. The order of fields is the column order of the views. ---------------------

_SECURITY_GROUP = pa.struct([("group_id", pa.string()), ("group_name", pa.string())])
_NIC = pa.struct(
    [
        ("device_index", pa.int32()),
        ("network_interface_id", pa.string()),
        ("vpc_id", pa.string()),
        ("subnet_id", pa.string()),
        ("private_ip_address", pa.string()),
        ("mac_address", pa.string()),
        ("security_groups", pa.list_(_SECURITY_GROUP)),
    ]
)
_RUN_ERROR = pa.struct([("target", pa.string()), ("message", pa.string())])

_COMMON = [("schema_version", pa.int32()), ("commit_id", pa.string())]

BACKUP_SETS = pa.schema(
    [
        *_COMMON,
        ("set_id", pa.string()),
        ("job_name", pa.string()),
        ("pool", pa.string()),
        ("cloud", pa.string()),
        ("started_at", TIMESTAMP),
        ("finished_at", TIMESTAMP),
        ("status", pa.string()),
        ("vm_count", pa.int64()),
        ("disk_count", pa.int64()),
        ("bytes_read", pa.int64()),
        ("bytes_sent", pa.int64()),
        ("bytes_stored", pa.int64()),
        ("logical_bytes", pa.int64()),
        ("format_version", pa.int32()),
        ("run_id", pa.string()),
        ("backup_host", pa.string()),
        ("committed_at", TIMESTAMP),
    ]
)

VM_BACKUPS = pa.schema(
    [
        *_COMMON,
        ("set_id", pa.string()),
        ("vm_id", pa.string()),
        ("vm_name", pa.string()),
        ("cluster_id", pa.string()),
        ("node_id", pa.string()),
        ("instance_type", pa.string()),
        ("cpu", pa.int32()),
        ("memory_mib", pa.int64()),
        ("image_id", pa.string()),
        ("platform", pa.string()),
        ("os_name", pa.string()),
        ("os_version", pa.string()),
        ("architecture", pa.string()),
        ("root_device_name", pa.string()),
        ("storage_id", pa.string()),
        ("state", pa.string()),
        ("nics", pa.list_(_NIC)),
        ("tags_json", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("started_at", TIMESTAMP),
        ("finished_at", TIMESTAMP),
        ("bytes_read", pa.int64()),
        ("bytes_sent", pa.int64()),
        ("bytes_stored", pa.int64()),
    ]
)

DISK_BACKUPS = pa.schema(
    [
        *_COMMON,
        ("set_id", pa.string()),
        ("vm_id", pa.string()),
        ("volume_id", pa.string()),
        ("name", pa.string()),
        ("size_bytes", pa.int64()),
        ("is_root", pa.bool_()),
        ("device_name", pa.string()),
        ("storage_id", pa.string()),
        ("format", pa.string()),
        ("serial", pa.string()),
        ("snapshot_id", pa.string()),
        ("bytes_read", pa.int64()),
        ("bytes_sent", pa.int64()),
        ("bytes_stored", pa.int64()),
        ("chunk_size", pa.int64()),
        ("chunk_count", pa.int64()),
        ("data_bytes", pa.int64()),
        ("referenced_stored_bytes", pa.int64()),
    ]
)

CHUNKS = pa.schema(
    [
        *_COMMON,
        ("set_id", pa.string()),
        ("volume_id", pa.string()),
        ("offset", pa.int64()),
        ("length", pa.int64()),
        ("digest", pa.string()),
        ("stored_size", pa.int64()),
        ("location", pa.string()),
    ]
)

JOB_RUNS = pa.schema(
    [
        *_COMMON,
        ("run_id", pa.string()),
        ("job_name", pa.string()),
        ("kind", pa.string()),
        ("flow_run_id", pa.string()),
        ("pool", pa.string()),
        ("cloud", pa.string()),
        ("set_id", pa.string()),
        ("status", pa.string()),
        ("started_at", TIMESTAMP),
        ("ended_at", TIMESTAMP),
        ("attempts", pa.int32()),
        ("vms_ok", pa.int32()),
        ("vms_failed", pa.int32()),
        ("vms_skipped", pa.int32()),
        ("bytes_read", pa.int64()),
        ("bytes_sent", pa.int64()),
        ("bytes_stored", pa.int64()),
        ("errors", pa.list_(_RUN_ERROR)),
        ("recorded_at", TIMESTAMP),
    ]
)

# -- set deletions (docs/lifecycle.md): tombstones, written after a set's data is gone --------


class SetDeletionRecord(CatalogRecord):
    """A backup set deleted (or, on tape and optical media, expired): the views hide it.

    Written only once the set's manifests (and a standard pool's packs) are gone from the pool,
    so no reader is ever shown a set that cannot be restored; written once per deletion, never
    changed (a set deleted twice keeps its first record in the view)."""

    set_id: str
    job_name: str = ""
    started_at: AwareDatetime | None = Field(default=None, description="when the deleted set started")
    reason: Literal["retention", "manual"] | str = "manual"
    rule: str = Field(default="", description="the retention policy that let it go (prune), or ''")
    deleted_by: str = Field(default="", description="the bingobackup user who pruned or deleted it")
    data_removed: bool = Field(
        default=True, description="False on tape/optical: the set is expired, its data stays on the media"
    )
    logical_bytes: int = Field(default=0, ge=0, description="the set's disk sizes, as its commit record said")
    bytes_stored: int = Field(default=0, ge=0, description="bytes the set newly wrote to the pool")
    deleted_at: AwareDatetime | None = Field(default=None, description="stamped by the writer")


SET_DELETIONS = pa.schema(
    [
        *_COMMON,
        ("set_id", pa.string()),
        ("job_name", pa.string()),
        ("started_at", TIMESTAMP),
        ("reason", pa.string()),
        ("rule", pa.string()),
        ("deleted_by", pa.string()),
        ("data_removed", pa.bool_()),
        ("logical_bytes", pa.int64()),
        ("bytes_stored", pa.int64()),
        ("deleted_at", TIMESTAMP),
    ]
)

VERIFICATIONS = pa.schema(
    [
        *_COMMON,
        ("run_id", pa.string()),
        ("set_id", pa.string()),
        ("pool", pa.string()),
        ("started_at", TIMESTAMP),
        ("verified_at", TIMESTAMP),
        ("status", pa.string()),
        ("chunks_checked", pa.int64()),
        ("bytes_checked", pa.int64()),
        ("damaged_chunks", pa.int64()),
        ("sampled_percent", pa.float64()),
        ("sample_seed", pa.int64()),
        ("flow_run_id", pa.string()),
    ]
)

R = TypeVar("R", bound=CatalogRecord)

# Table name (= directory under `<pool>/catalog/` = DuckDB view name) → schema.
TABLES: dict[str, pa.Schema] = {
    "backup_sets": BACKUP_SETS,
    "vm_backups": VM_BACKUPS,
    "disk_backups": DISK_BACKUPS,
    "chunks": CHUNKS,
    "job_runs": JOB_RUNS,
    "set_deletions": SET_DELETIONS,
    "verifications": VERIFICATIONS,
}


@contextlib.contextmanager
def arrow_without_pandas() -> Iterator[None]:
    """pyarrow builds tables from Python values in this block without importing pandas.

    pyarrow imports pandas (when installed) the first time it converts Python values, to ask
    whether they are pandas objects, and its C++ side tries again on every conversion until the
    import succeeds. A backup writes its catalog rows from plain Python values and needs no
    pandas; that import cost it 0.3 CPU-s and up to 1 s before the summary (docs/benchmarks.md,
    "End to end"). So here `import pandas` fails, for this thread only, and pyarrow goes on
    without it. Its "no pandas" is not final: converting a table to pandas (`to_pandas`, which
    the catalog's queries use) imports pandas then. Where pandas is loaded already (the
    worker's fork server, a query before), this changes nothing.
    """
    if "pandas" in sys.modules:
        yield
        return
    refuse = _RefusePandas(threading.get_ident())
    sys.meta_path.insert(0, refuse)
    try:
        yield
    finally:
        sys.meta_path.remove(refuse)


class _RefusePandas(importlib.abc.MetaPathFinder):
    """Refuses `import pandas` in one thread (other threads import as usual)."""

    def __init__(self, thread: int) -> None:
        self.thread = thread

    def find_spec(self, fullname: str, path: object, target: object = None) -> None:
        if fullname == "pandas" and threading.get_ident() == self.thread:
            raise ImportError("pandas is not needed to build catalog rows (arrow_without_pandas)")
        return None


def records_to_table(records: list[CatalogRecord], schema: pa.Schema, commit_id: str) -> pa.Table:
    """Rows for one Parquet file, stamped with the schema version and the commit they belong to."""
    rows = [
        {"schema_version": SCHEMA_VERSION, "commit_id": commit_id, **r.model_dump(mode="python")}
        for r in records
    ]
    with arrow_without_pandas():
        return pa.Table.from_pylist(rows, schema=schema)


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def row_to_record(model: type[R], row: dict[str, Any]) -> R:
    """A record from a view row. NULLs (columns older files lack) fall back to the model's defaults."""
    return model.model_validate(_drop_nulls(row))
