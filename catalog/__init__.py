"""The backup catalog: Parquet files under `<pool>/catalog/`, read through DuckDB views.

See `docs/catalog.md` for the layout, every column, and the schema version rule.
"""

from __future__ import annotations

from catalog.browse import CloudEntry, JobEntry, browse_by_host, browse_by_job
from catalog.location import CatalogError
from catalog.query import Catalog, CatalogNotFoundError, CatalogQueryError, CatalogRoot, VmBackup
from catalog.schema import (
    SCHEMA_VERSION,
    BackupSetRecord,
    DiskBackupRecord,
    JobRunRecord,
    NicRecord,
    RunError,
    SecurityGroupEntry,
    SetDeletionRecord,
    VmBackupRecord,
)
from catalog.writer import CatalogWriteError, CatalogWriter

__all__ = [
    "SCHEMA_VERSION",
    "BackupSetRecord",
    "Catalog",
    "CatalogError",
    "CatalogNotFoundError",
    "CatalogQueryError",
    "CatalogRoot",
    "CatalogWriteError",
    "CatalogWriter",
    "CloudEntry",
    "DiskBackupRecord",
    "JobEntry",
    "JobRunRecord",
    "NicRecord",
    "RunError",
    "SecurityGroupEntry",
    "SetDeletionRecord",
    "VmBackup",
    "VmBackupRecord",
    "browse_by_host",
    "browse_by_job",
]
