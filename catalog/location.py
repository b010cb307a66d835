"""Where a pool's catalog lives: `<pool root>/catalog/<table>/*.parquet` on any pyarrow filesystem."""

from __future__ import annotations

import os
import posixpath

import pyarrow.fs as pafs

from bingobackup.errors import BingoBackupError

CATALOG_DIR = "catalog"
PARQUET_SUFFIX = ".parquet"


class CatalogError(BingoBackupError):
    """Anything the catalog refuses to do; the message says what to do next."""


class CatalogLocation:
    """The catalog directory of one pool.

    `root` is the pool's root: a local path, a URI (`s3://bucket/prefix`, `file:///…`), or a
    path inside `filesystem` (for S3FileSystem: `bucket/prefix`).
    """

    def __init__(self, root: str, filesystem: pafs.FileSystem | None = None) -> None:
        if filesystem is None and "://" in root:
            filesystem, root = pafs.FileSystem.from_uri(root)
        if filesystem is None:
            filesystem = pafs.LocalFileSystem()
        if isinstance(filesystem, pafs.LocalFileSystem):
            root = os.path.abspath(root)
        self.filesystem: pafs.FileSystem = filesystem
        self.root = root.rstrip("/")
        self.path = posixpath.join(self.root, CATALOG_DIR)

    @property
    def is_local(self) -> bool:
        return isinstance(self.filesystem, pafs.LocalFileSystem)

    def table_dir(self, table: str) -> str:
        return posixpath.join(self.path, table)

    def file_path(self, table: str, name: str) -> str:
        return posixpath.join(self.table_dir(table), name + PARQUET_SUFFIX)

    def exists(self, path: str) -> bool:
        return self.filesystem.get_file_info(path).type != pafs.FileType.NotFound

    def list_files(self, table: str, prefix: str = "") -> list[str]:
        """The table's committed-to-disk Parquet files, sorted; temp files (leading dot) excluded."""
        selector = pafs.FileSelector(self.table_dir(table), allow_not_found=True, recursive=False)
        try:
            infos = self.filesystem.get_file_info(selector)
        except OSError as exc:
            raise CatalogError(
                f"Cannot list the catalog at {self.table_dir(table)}: {exc}. "
                "Check that the pool root is right and readable with these credentials."
            ) from exc
        return sorted(
            info.path
            for info in infos
            if info.type == pafs.FileType.File
            and info.base_name.endswith(PARQUET_SUFFIX)
            and info.base_name.startswith(prefix)
            and not info.base_name.startswith((".", "_"))
        )

    def __repr__(self) -> str:
        return f"CatalogLocation({self.filesystem.type_name}:{self.path})"
