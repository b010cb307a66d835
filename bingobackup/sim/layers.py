"""Copy-on-write volume files: a snapshot is a frozen layer shared by hard link, not a copy.

A real cloud snapshots a volume, and makes a volume from a snapshot, in O(metadata) time.
The simulator does the same with hard links, which every POSIX filesystem has (unlike
reflinks): `CreateSnapshot` links `snapshots/<snap>.raw` to the volume's file, and
`CreateVolume` from a snapshot (or `RunInstances` from an image) links the new volume's file
to the snapshot's. Readers open `volumes/<id>.raw` as before and see the right bytes at once.

The price is a rule for writers: a file may be shared, so nobody writes a volume's file in
place. Writers go through `write_volume` (`bingobackup sim write-volume`, `POST
/_sim/volumes/<id>/write`), which first gives the volume a file of its own (a sparse copy,
renamed over the shared name: copy on first write), then writes, all under the cloud's lock
so a snapshot never sees half a write. The one writer that opens a volume directly, restore
through the backup host's device, writes volumes it created empty, which share nothing.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from bingobackup.sim.addvm import exclusive_state_dir
from bingobackup.sim.errors import SimApiError, SimulatorError, incorrect_state, invalid, not_found
from bingobackup.sim.state import StateStore
from bingobackup.sparse import allocated_bytes, copy_sparse

_WRITE_BLOCK = 8 << 20


def freeze(source: Path, target: Path) -> None:
    """`target` becomes another name of `source`'s file (replacing any `target`): no byte copied."""
    target.unlink(missing_ok=True)
    os.link(source, target)


def own_file(path: Path) -> None:
    """Give `path` a file no other name shares, so writing it changes nothing else."""
    if os.stat(path).st_nlink == 1:
        return
    private = path.with_name(f".{path.name}.own")
    copy_sparse(path, private)
    os.replace(private, path)


def write_volume(store: StateStore, volume_id: str, offset: int, data: bytes | Path) -> int:
    """Write `data` (bytes, or the whole of a file) into the volume at byte `offset`; returns its length.

    The caller holds `store.lock`. A volume keeps its size: a write past its end is refused.
    """
    volume = store.state.volumes.get(volume_id)
    if volume is None:
        raise not_found("volume", volume_id)
    if volume.status == "error":
        raise incorrect_state(f"The volume '{volume_id}' is in error; it cannot be written.")
    source: BinaryIO
    try:
        if isinstance(data, bytes):
            length, source = len(data), io.BytesIO(data)
        else:
            length, source = data.stat().st_size, data.open("rb")
    except OSError as exc:
        raise invalid("source", str(data), f"cannot read it ({exc.strerror})") from None
    with source:
        if offset < 0 or offset + length > volume.size_bytes:
            raise invalid(
                "offset",
                str(offset),
                f"{length} bytes from there do not fit in the volume's {volume.size_bytes} bytes",
            )
        path = store.volume_path(volume_id)
        own_file(path)
        fd = os.open(path, os.O_WRONLY)
        try:
            position = offset
            while block := source.read(_WRITE_BLOCK):
                while block:
                    written = os.pwrite(fd, block, position)
                    block, position = block[written:], position + written
            os.fsync(fd)
        finally:
            os.close(fd)
    return length


def write_volume_offline(state_dir: Path, volume_id: str, offset: int, source: Path) -> int:
    """`write_volume` on a stopped simulator's state directory (`bingobackup sim write-volume --state`)."""
    if not StateStore.exists(state_dir):
        raise SimulatorError(f"{state_dir} holds no simulator state; give the state directory of a simulator")
    with exclusive_state_dir(state_dir):
        store = StateStore.load(state_dir)
        try:
            return write_volume(store, volume_id, offset, source)
        except SimApiError as error:
            raise SimulatorError(f"cannot write volume {volume_id}: {error.message}") from None


def allocated_once(paths: Iterable[Path]) -> int:
    """Bytes allocated for `paths`, a file shared by several names counted once; missing files cost 0."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for path in paths:
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            continue
        if (stat.st_dev, stat.st_ino) not in seen:
            seen.add((stat.st_dev, stat.st_ino))
            total += allocated_bytes(path)
    return total
