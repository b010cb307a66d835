"""Real pools holding a calendar of backup sets, committed to their catalog as a backup does."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bingobackup.mover.backup import backup_disk
from bingobackup.pools.pool import Pool
from catalog import BackupSetRecord, CatalogWriter, DiskBackupRecord, VmBackupRecord

CHUNK = 64 << 10


@dataclass
class Calendar:
    """What was backed up: set id → VM name → the sha256 of its one disk."""

    pool: Pool
    writer: CatalogWriter
    work: Path
    disks: dict[str, dict[str, str]] = field(default_factory=dict)

    def back_up(self, set_id: str, started: datetime, vms: dict[str, str], job: str = "nightly") -> None:
        """One set holding each VM of `vms` (name → status ok/failed); an ok VM's disk is 2.5
        chunks of fresh random data plus a chunk every set shares (dedup finds it)."""
        vm_rows, disk_rows, manifests = [], [], []
        for name, status in vms.items():
            vm_id = f"i-{name}"
            vm_rows.append(VmBackupRecord(set_id=set_id, vm_id=vm_id, vm_name=name, status=status))
            if status != "ok":
                continue
            data = b"S" * CHUNK + os.urandom(CHUNK) + os.urandom(CHUNK // 2)
            source = self.work / f"{set_id}-{name}.raw"
            source.write_bytes(data)
            volume = f"vol-{name}"
            result = backup_disk(
                source,
                self.pool.open_disk_writer(set_id, volume, len(data)),
                size_bytes=len(data),
                chunk_size=CHUNK,
            )
            manifests.append(result.manifest)
            disk_rows.append(
                DiskBackupRecord(
                    set_id=set_id, vm_id=vm_id, volume_id=volume, size_bytes=len(data), is_root=True
                )
            )
            self.disks.setdefault(set_id, {})[name] = hashlib.sha256(data).hexdigest()
        status = "ok" if all(s == "ok" for s in vms.values()) else ("failed" if not disk_rows else "partial")
        record = BackupSetRecord(
            set_id=set_id,
            job_name=job,
            pool=self.pool.name,
            cloud="demo",
            started_at=started,
            finished_at=started,
            status=status,
            bytes_stored=len(vm_rows) * CHUNK,
        )
        self.writer.write_backup_set(record, vm_rows, disk_rows, manifests)

    def restored_sha256(self, set_id: str, vm: str) -> str:
        """The disk of `vm` in `set_id` read back from the pool through its sealed manifest."""
        manifest = self.pool.load_manifest(set_id, f"vol-{vm}")
        out = bytearray(manifest.size_bytes)
        for ref, data in self.pool.iter_disk(manifest):
            out[ref.offset : ref.offset + len(data)] = data
        return hashlib.sha256(out).hexdigest()
