"""Builders for catalog tests: a realistic set of VMs, disks and manifests."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bingobackup.format.manifest import ChunkRef, DiskManifest
from bingobackup.mover.backup import backup_disk
from bingobackup.pools.open import create_pool
from bingobackup.resources.models import PoolRegistration
from bingobackup.resources.pools import pool_catalog_root
from catalog import CatalogWriter
from catalog.schema import (
    BackupSetRecord,
    DiskBackupRecord,
    JobRunRecord,
    NicRecord,
    SecurityGroupEntry,
    VmBackupRecord,
)

CHUNK = 4 << 20
SMALL_CHUNK = 64 << 10
T0 = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def manifest(set_id: str, volume_id: str, size: int, present: list[int], tag: str = "") -> DiskManifest:
    """Chunks at the given indexes (others are holes); digests depend on volume, index and `tag`."""
    chunks = []
    for i in present:
        length = min(CHUNK, size - i * CHUNK)
        chunks.append(
            ChunkRef(
                offset=i * CHUNK,
                length=length,
                digest=digest(f"{volume_id}:{i}:{tag}"),
                stored_size=length // 3 + 40,
                location=f"chunks/{i:04x}",
            )
        )
    return DiskManifest(
        set_id=set_id, volume_id=volume_id, size_bytes=size, chunk_size=CHUNK, chunks=tuple(chunks)
    )


@dataclass
class SetParts:
    backup_set: BackupSetRecord
    vms: list[VmBackupRecord]
    disks: list[DiskBackupRecord]
    manifests: list[DiskManifest]

    def args(
        self,
    ) -> tuple[BackupSetRecord, list[VmBackupRecord], list[DiskBackupRecord], list[DiskManifest]]:
        return self.backup_set, self.vms, self.disks, self.manifests


def make_set(
    set_id: str,
    *,
    job: str = "nightly",
    pool: str = "local-dedup",
    started: datetime = T0,
    vms: tuple[str, ...] = ("web",),
    tag: str = "",
) -> SetParts:
    """A set with one VM per name in `vms`: a 2-NIC VM with a system disk and a data disk."""
    vm_records, disks, manifests = [], [], []
    for n, name in enumerate(vms):
        vm_id = f"i-{digest(name)[:8].upper()}"
        vm_records.append(
            VmBackupRecord(
                set_id=set_id,
                vm_id=vm_id,
                vm_name=name,
                cluster_id="cluster-a",
                node_id=f"node{n}@10.0.0.{n + 1}",
                instance_type="m1.small",
                cpu=2,
                memory_mib=4096,
                state="running",
                nics=(
                    NicRecord(
                        device_index=0,
                        vpc_id="vpc-1",
                        subnet_id="subnet-1",
                        private_ip_address=f"172.16.0.{n + 10}",
                        mac_address=f"d0:0d:00:00:00:{n:02x}",
                        security_groups=(SecurityGroupEntry(group_id="sg-1", group_name="default"),),
                    ),
                    NicRecord(
                        device_index=1, vpc_id="vpc-1", subnet_id="subnet-2", private_ip_address="10.9.0.5"
                    ),
                ),
                tags_json='{"env": "prod"}',
                started_at=started,
                finished_at=started + timedelta(minutes=5),
                bytes_read=3 * CHUNK,
            )
        )
        for volume_id, size, is_root, present in (
            (f"vol-{name}-root", 3 * CHUNK + 1000, True, [0, 1, 3]),
            (f"vol-{name}-data", 2 * CHUNK, False, []),  # an all-zero data disk
        ):
            disks.append(
                DiskBackupRecord(
                    set_id=set_id,
                    vm_id=vm_id,
                    volume_id=volume_id,
                    name=f"{name}-{'root' if is_root else 'data'}",
                    size_bytes=size,
                    is_root=is_root,
                    device_name="/dev/vda" if is_root else "/dev/vdb",
                    storage_id="storage-1",
                    format="qcow2",
                    bytes_stored=100,
                )
            )
            manifests.append(manifest(set_id, volume_id, size, present, tag))
    backup_set = BackupSetRecord(
        set_id=set_id,
        job_name=job,
        pool=pool,
        cloud="demo",
        started_at=started,
        finished_at=started + timedelta(minutes=10),
        bytes_read=10 * CHUNK,
        bytes_sent=4 * CHUNK,
        bytes_stored=2 * CHUNK,
        run_id=f"run-{set_id}",
    )
    return SetParts(backup_set, vm_records, disks, manifests)


@dataclass
class BackedUpSet:
    set_id: str
    vm_name: str
    volume_id: str
    sha256: str


def back_up_sets(pool_dir: Path, vm_names: tuple[str, ...] = ("web", "db")) -> list[BackedUpSet]:
    """A real dedup pool in `pool_dir` with one set per VM (one 3-chunk disk each, random data),
    committed to its catalog with the job run that made it, as the backup flow does."""
    pool = create_pool(pool_dir, "dedup", name=pool_dir.name, chunk_size=SMALL_CHUNK)
    writer = CatalogWriter(str(pool_dir))
    backed_up = []
    for n, vm_name in enumerate(vm_names):
        parts = make_set(f"set-{vm_name}", pool=pool_dir.name, vms=(vm_name,), started=T0 + timedelta(days=n))
        data = os.urandom(2 * SMALL_CHUNK) + bytes(SMALL_CHUNK) + os.urandom(100)
        source = pool_dir.parent / "sources" / f"{vm_name}.raw"
        source.parent.mkdir(exist_ok=True)
        source.write_bytes(data)
        root = parts.disks[0]
        result = backup_disk(
            source,
            pool.open_disk_writer(parts.backup_set.set_id, root.volume_id, len(data)),
            size_bytes=len(data),
            chunk_size=SMALL_CHUNK,
        )
        disk = root.model_copy(update={"size_bytes": len(data)})
        committed = writer.write_backup_set(parts.backup_set, parts.vms, [disk], [result.manifest])
        writer.write_job_run(
            JobRunRecord(
                run_id=committed.run_id,
                job_name=committed.job_name,
                pool=committed.pool,
                cloud=committed.cloud,
                set_id=committed.set_id,
                status="completed",
                started_at=committed.started_at,
                ended_at=committed.finished_at,
                vms_ok=1,
            )
        )
        backed_up.append(
            BackedUpSet(committed.set_id, vm_name, root.volume_id, hashlib.sha256(data).hexdigest())
        )
    return backed_up


def record_set(registration: PoolRegistration, manifest: DiskManifest) -> None:
    """What the backup flow writes to the pool's catalog for a one-VM, one-disk set."""
    root, filesystem = pool_catalog_root(registration)
    now = datetime.now(UTC)
    CatalogWriter(root, filesystem=filesystem).write_backup_set(
        BackupSetRecord(
            set_id=manifest.set_id,
            job_name="nightly",
            pool=registration.name,
            cloud="demo",
            started_at=now,
            finished_at=now,
        ),
        [VmBackupRecord(set_id=manifest.set_id, vm_id="i-0000ABCD", vm_name="web")],
        [
            DiskBackupRecord(
                set_id=manifest.set_id,
                vm_id="i-0000ABCD",
                volume_id=manifest.volume_id,
                size_bytes=manifest.size_bytes,
            )
        ],
        [manifest],
    )
