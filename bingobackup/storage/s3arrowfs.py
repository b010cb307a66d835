"""An object pool's bucket as a pyarrow filesystem, for its catalog (Parquet written and read by
DuckDB).

pyarrow's own S3FileSystem is used whenever it can honour the pool's settings: it verifies TLS
(with the pool's CA bundle) and retries `max_attempts` times. Two settings it cannot honour,
so the catalog then goes through the pool's S3BlobStore (the boto3 client the chunks use):

- `verify_tls=False`: pyarrow has no switch to skip certificate checks, so on a self-signed
  endpoint the chunks would be written and the catalog write would then fail;
- Object Lock: pyarrow cannot send retention headers, so the catalog objects would be the only
  ones of a backup that could be deleted early.

Through the blob store, catalog objects also get `If-None-Match: *` (write-once) and the same
retries and error messages as chunks. Paths are `bucket/prefix/...`, as with S3FileSystem, so
callers never see which one they got.
"""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from bingobackup.storage.base import BlobWriter
from bingobackup.storage.errors import BlobNotFoundError
from bingobackup.storage.s3config import S3Settings
from bingobackup.storage.s3store import S3BlobStore

TYPE_NAME = "bingobackup-s3"


def catalog_filesystem(settings: S3Settings, pool_name: str) -> pafs.FileSystem:
    """The filesystem an object pool's catalog is written and read through, rooted like
    pyarrow's S3FileSystem (`settings.catalog_root` is the pool root inside it)."""
    if settings.verify_tls and not settings.object_lock_mode:
        return settings.pyarrow_filesystem()
    return pafs.PyFileSystem(BlobStoreHandler(S3BlobStore(settings, pool_name)))


class _UploadOnClose(io.RawIOBase):
    """A catalog file being written: streamed into a (multipart) upload that becomes visible
    whole when the file is closed, as pyarrow's S3 output streams do."""

    def __init__(self, writer: BlobWriter) -> None:
        super().__init__()
        self._writer = writer

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._writer.write(view)  # copied into the upload's part buffer before this returns
        return len(view)

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._writer.commit()
        finally:
            self._writer.abort()  # no-op after a commit; removes the upload after a failure
            super().close()


class BlobStoreHandler(pafs.FileSystemHandler):
    """pyarrow filesystem calls on `bucket/prefix/key` paths, served by an S3BlobStore."""

    def __init__(self, store: S3BlobStore) -> None:
        self.store = store
        self.root = store.settings.catalog_root

    # -- paths ------------------------------------------------------------------------------
    def _key(self, path: str) -> str:
        path = path.rstrip("/")
        if path == self.root:
            return ""
        if not path.startswith(self.root + "/"):
            raise FileNotFoundError(f"{path} is outside pool {self.store.name} ({self.root})")
        return path[len(self.root) + 1 :]

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    # -- information ----------------------------------------------------------------------------
    def get_type_name(self) -> str:
        return TYPE_NAME

    def equals(self, other: Any) -> bool:
        return isinstance(other, BlobStoreHandler) and (other.store.settings, other.store.name) == (
            self.store.settings,
            self.store.name,
        )

    def normalize_path(self, path: str) -> str:
        return path

    def _info(self, path: str) -> pafs.FileInfo:
        key = self._key(path)
        if not key:
            return pafs.FileInfo(path, pafs.FileType.Directory)
        try:
            return pafs.FileInfo(path, pafs.FileType.File, size=self.store.stat(key).size)
        except BlobNotFoundError:
            pass
        # Object stores have no directories: one is there when a key lies below it.
        if next(iter(self.store.list(key + "/")), None) is not None:
            return pafs.FileInfo(path, pafs.FileType.Directory)
        return pafs.FileInfo(path, pafs.FileType.NotFound)

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return [self._info(path) for path in paths]

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        base = self._key(selector.base_dir)
        prefix = f"{base}/" if base else ""
        files: list[pafs.FileInfo] = []
        directories: set[str] = set()
        for blob in self.store.list(prefix):
            parts = blob.key[len(prefix) :].split("/")
            if len(parts) > 1:  # below a directory: the child one, or every one when recursive
                deepest = len(parts) - 1 if selector.recursive else 1
                directories.update(prefix + "/".join(parts[:n]) for n in range(1, deepest + 1))
                if not selector.recursive:
                    continue
            files.append(pafs.FileInfo(self._path(blob.key), pafs.FileType.File, size=blob.size))
        if not files and not directories and not selector.allow_not_found:
            raise FileNotFoundError(f"{selector.base_dir} does not exist in pool {self.store.name}")
        return files + [pafs.FileInfo(self._path(d), pafs.FileType.Directory) for d in sorted(directories)]

    # -- reading and writing ------------------------------------------------------------------
    def open_input_stream(self, path: str) -> pa.NativeFile:
        return self.open_input_file(path)

    def open_input_file(self, path: str) -> pa.NativeFile:
        # Catalog files are small (a disk's chunk rows are a few MiB): one GET, then memory.
        return pa.BufferReader(self.store.get(self._key(path)))

    def open_output_stream(self, path: str, metadata: Any = None) -> pa.NativeFile:
        return pa.PythonFile(_UploadOnClose(self.store.open_append(self._key(path))), mode="w")

    def open_append_stream(self, path: str, metadata: Any = None) -> pa.NativeFile:
        raise OSError(f"{path}: objects in an S3 pool are written once, never appended to")

    def create_dir(self, path: str, recursive: bool) -> None:
        pass  # object stores have no directories; keys below a path are enough

    def delete_file(self, path: str) -> None:
        self.store.delete(self._key(path))

    def copy_file(self, src: str, dest: str) -> None:
        self.store.put(self._key(dest), self.store.get(self._key(src)))

    def _refuse(self, path: str, *_: Any) -> None:
        raise OSError(f"{path}: a pool's catalog is only ever added to; delete single files instead")

    def move(self, src: str, dest: str) -> None:
        raise OSError(f"{src}: objects in an S3 pool are written once, never moved or renamed")

    delete_dir = delete_dir_contents = _refuse

    def delete_root_dir_contents(self) -> None:
        self._refuse(self.root)
