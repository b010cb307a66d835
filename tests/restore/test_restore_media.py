"""A restore's pool side: every missing optical disc named before anything is created, the spec's
extra disc-image folder used, and a lost link to the pool ridden out within the reconnect time
(a damaged chunk is not retried)."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from bingobackup.format.errors import CorruptChunkError
from bingobackup.format.manifest import ChunkRef
from bingobackup.jobs.linkretry import LinkRetry, PoolLinkLost, ResumeBufferTooSmall
from bingobackup.media.discs import OpticalSettings
from bingobackup.mover.backup import backup_disk
from bingobackup.mover.restore import write_disk_from_pool
from bingobackup.pools.opticalpool import create_optical_pool
from bingobackup.resources.models import PoolRegistration
from bingobackup.restore.job import RestoreJobError, open_restore_pool, require_media
from bingobackup.restore.plan import DiskPlan, RestorePlan, VmPlan
from bingobackup.restore.resume import ResumingSource
from bingobackup.restore.source import BackedUpDisk, BackedUpVm
from bingobackup.specs.restore import RestoreOptions

CHUNK = 64 * 1024
DISC = 1 << 20


def _disk_image(path: Path, chunks: int) -> str:
    data = os.urandom(CHUNK * (chunks - 2)) + bytes(CHUNK) + os.urandom(CHUNK // 2)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _plan(volumes: dict[str, int]) -> RestorePlan:
    vm = BackedUpVm(
        set_id="set-1",
        vm_id="i-OPTICAL",
        name="web",
        disks=tuple(BackedUpDisk(volume_id=v, size_bytes=size) for v, size in volumes.items()),
    )
    disks = tuple(DiskPlan(source=d, name=d.volume_id, storage_id="sto", device_name="") for d in vm.disks)
    return RestorePlan(
        spec_name="from-discs", kind="disk", cluster_id="c", vms=(VmPlan(source=vm, name="web", disks=disks),)
    )


def test_every_missing_disc_is_named_before_a_restore_and_the_spec_images_folder_is_used(
    tmp_path: Path,
) -> None:
    home = tmp_path / "pool"
    settings = OpticalSettings.model_validate(
        {
            "disc_bytes": DISC,
            "label_prefix": OpticalSettings.prefix_for("opt"),
            "output_dir": str(tmp_path / "burned"),
        }
    )
    pool = create_optical_pool(home, settings, chunk_size=CHUNK)
    sha, sizes = {}, {}
    for volume, chunks in (("vol-small", 4), ("vol-big", 20)):  # vol-big spans two discs
        source = tmp_path / f"{volume}.raw"
        sha[volume] = _disk_image(source, chunks)
        sizes[volume] = source.stat().st_size
        writer = pool.open_disk_writer("set-1", volume, sizes[volume])
        backup_disk(source, writer, size_bytes=sizes[volume], chunk_size=CHUNK)
    pool.close_disc()
    labels = sorted(p.stem for p in (tmp_path / "burned").glob("*.iso"))
    assert len(labels) == 2
    # The discs went to the shelf: their images are now in another folder.
    shelf = tmp_path / "read-back"
    shutil.move(tmp_path / "burned", shelf)

    registration = PoolRegistration(name="opt", kind="optical", location=str(home))
    plan = _plan(sizes)
    without = open_restore_pool(registration, RestoreOptions())
    with pytest.raises(RestoreJobError) as refused:
        require_media(without, plan)
    message = str(refused.value)
    assert "nothing was created" in message
    assert all(label in message for label in labels)
    assert "VM web disk vol-small" in message and "VM web disk vol-big" in message

    with_images = open_restore_pool(registration, RestoreOptions(disc_images=str(shelf)))
    require_media(with_images, plan)
    for volume in sizes:
        output = tmp_path / f"{volume}.restored"
        source = ResumingSource(with_images, LinkRetry(window_seconds=60, what=volume))
        write_disk_from_pool(
            source, with_images.load_manifest("set-1", volume), output, channels=2, label=volume
        )
        assert hashlib.sha256(output.read_bytes()).hexdigest() == sha[volume]


def test_a_resume_buffer_smaller_than_a_chunk_is_refused_naming_the_size_to_set(tmp_path: Path) -> None:
    from bingobackup.pools.open import create_pool_in
    from bingobackup.storage.localdir import LocalDirBlobStore

    create_pool_in(LocalDirBlobStore(tmp_path / "big", "big"), "dedup", chunk_size=4 << 20)
    registration = PoolRegistration(name="big", kind="dedup", location=str(tmp_path / "big"))
    with pytest.raises(ResumeBufferTooSmall, match="at least 4"):
        open_restore_pool(registration, RestoreOptions(resume_buffer_mib=1))


class _Flaky:
    """A pool whose link fails `failures` times (EIO), or whose chunk is damaged."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures, self.calls = failures, 0
        self.error = error or OSError(errno.EIO, os.strerror(errno.EIO))

    def read_chunk(self, ref: ChunkRef) -> bytes:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return b"data"


REF = ChunkRef(offset=8 * CHUNK, length=4, digest="d" * 64, stored_size=4, location="x")


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_lost_pool_link_is_ridden_out_within_the_reconnect_time_and_named_after_it() -> None:
    clock = _Clock()
    flaky = _Flaky(failures=5)
    source = ResumingSource(
        flaky, LinkRetry(window_seconds=60, what="disk vol-1", clock=clock, sleep=clock.sleep)
    )
    assert source.read_chunk(REF) == b"data"
    assert (flaky.calls, source.retry.reconnects) == (6, 1)

    down = _Flaky(failures=10**6)
    source = ResumingSource(
        down, LinkRetry(window_seconds=90, what="disk vol-1", clock=clock, sleep=clock.sleep)
    )
    start = clock.now
    with pytest.raises(PoolLinkLost, match=r"disk vol-1.*reconnect time of 1\.5 min.*offset 524288"):
        source.read_chunk(REF)
    assert 80 <= clock.now - start <= 90  # kept trying for the window, not longer


def test_a_damaged_chunk_is_not_retried() -> None:
    damaged = _Flaky(failures=1, error=CorruptChunkError("d" * 64, "wrong digest", "x"))
    source = ResumingSource(damaged, LinkRetry(window_seconds=60, what="disk vol-1"))
    with pytest.raises(CorruptChunkError):
        source.read_chunk(REF)
    assert damaged.calls == 1
