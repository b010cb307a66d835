"""The backup catalog: Parquet files under `<pool>/catalog/`, read through DuckDB views.

See `docs/catalog.md` for the layout, every column, and the schema version rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from catalog.location import CatalogError
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

if TYPE_CHECKING:
    from catalog.browse import CloudEntry, JobEntry, browse_by_host, browse_by_job
    from catalog.query import Catalog, CatalogNotFoundError, CatalogQueryError, CatalogRoot, VmBackup

# Reading (DuckDB, 0.27 CPU-s to import) is imported when first used: a backup only writes.
_READERS = {
    "CloudEntry": "catalog.browse",
    "JobEntry": "catalog.browse",
    "browse_by_host": "catalog.browse",
    "browse_by_job": "catalog.browse",
    "Catalog": "catalog.query",
    "CatalogNotFoundError": "catalog.query",
    "CatalogQueryError": "catalog.query",
    "CatalogRoot": "catalog.query",
    "VmBackup": "catalog.query",
}


def __getattr__(name: str) -> Any:
    if name in _READERS:
        import importlib

        return getattr(importlib.import_module(_READERS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
