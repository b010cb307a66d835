"""Finding a hot-added disk on the backup host by its virtio serial.

The hypervisor passes the volume id as the disk's virtio serial, truncated to 20 characters;
udev then links `/dev/disk/by-id/virtio-<serial>` to the block device. `root` lets the same
code find the simulator's links under `STATE/hosts/<instance-id>/`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bingobackup.mover.errors import DeviceTimeoutError

VIRTIO_SERIAL_MAX = 20


class DeviceLocator:
    def __init__(
        self,
        root: Path = Path("/"),
        *,
        poll_interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.root = Path(root)
        self._poll_interval = poll_interval
        self._clock = clock
        self._sleep = sleep

    def path_for(self, serial: str) -> Path:
        if not serial:
            raise ValueError("a virtio serial (the volume id) is needed to find a disk")
        return self.root / "dev" / "disk" / "by-id" / f"virtio-{serial[:VIRTIO_SERIAL_MAX]}"

    def _poll(self, serial: str, timeout: float, *, present: bool) -> Path:
        path = self.path_for(serial)
        deadline = self._clock() + timeout
        while True:
            # exists() follows the link: a dangling by-id link is not a usable disk yet.
            if path.exists() == present:
                return path
            remaining = deadline - self._clock()
            if remaining <= 0:
                return path if path.exists() == present else self._timeout(serial, path, timeout, present)
            self._sleep(min(self._poll_interval, remaining))

    def _timeout(self, serial: str, path: Path, timeout: float, present: bool) -> Path:
        if present:
            raise DeviceTimeoutError(
                f"the disk with virtio serial {serial!r} did not appear at {path} within {timeout:g} s; "
                "check that the volume is attached to this backup host (DescribeVolumes shows it "
                "'in-use' by this instance) and that udev created the link (ls -l "
                f"{path.parent}), then retry"
            )
        raise DeviceTimeoutError(
            f"the disk with virtio serial {serial!r} is still present at {path} {timeout:g} s after "
            "it was detached; check that nothing on the backup host holds it open (lsof "
            f"{path}) and that the detach finished in BingoCloud, then retry"
        )

    def wait_for(self, serial: str, timeout: float) -> Path:
        """The device path once it exists; `DeviceTimeoutError` after `timeout` seconds."""
        return self._poll(serial, timeout, present=True)

    def wait_gone(self, serial: str, timeout: float) -> None:
        """Return once the device link has gone; `DeviceTimeoutError` after `timeout` seconds."""
        self._poll(serial, timeout, present=False)
