"""Finding an attached disk by its virtio serial under a root (the simulator's host dir)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bingobackup.mover.devices import DeviceLocator
from bingobackup.mover.errors import DeviceTimeoutError


class StepClock:
    """Fake time: each sleep advances the clock and runs the action scheduled for that step."""

    def __init__(self, actions: dict[int, Callable[[], None]] | None = None) -> None:
        self.now = 0.0
        self.sleeps = 0
        self.actions = actions or {}

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1
        if self.sleeps in self.actions:
            self.actions[self.sleeps]()


def _locator(root: Path, clock: StepClock) -> DeviceLocator:
    return DeviceLocator(root, poll_interval=0.5, clock=clock.clock, sleep=clock.sleep)


def test_path_uses_the_first_20_characters_of_the_serial(tmp_path: Path) -> None:
    locator = DeviceLocator(tmp_path)
    assert (
        locator.path_for("vol-0123456789abcdefXYZ") == tmp_path / "dev/disk/by-id/virtio-vol-0123456789abcdef"
    )
    assert DeviceLocator().path_for("vol-1") == Path("/dev/disk/by-id/virtio-vol-1")


def test_wait_for_returns_once_the_link_appears(tmp_path: Path) -> None:
    volume = tmp_path / "volumes" / "vol-1.raw"
    volume.parent.mkdir()
    volume.write_bytes(b"disk")
    locator = DeviceLocator(tmp_path)
    link = locator.path_for("vol-1")

    def attach() -> None:
        link.parent.mkdir(parents=True)
        link.symlink_to(volume)

    clock = StepClock({3: attach})
    found = _locator(tmp_path, clock).wait_for("vol-1", timeout=10)
    assert found == link
    assert found.read_bytes() == b"disk"
    assert clock.sleeps == 3


def test_a_dangling_link_is_not_a_disk_and_the_timeout_says_what_to_check(tmp_path: Path) -> None:
    link = DeviceLocator(tmp_path).path_for("vol-2")
    link.parent.mkdir(parents=True)
    link.symlink_to(tmp_path / "missing.raw")
    clock = StepClock()
    with pytest.raises(DeviceTimeoutError) as raised:
        _locator(tmp_path, clock).wait_for("vol-2", timeout=3)
    message = str(raised.value)
    assert "'vol-2'" in message and str(link) in message
    assert "attached to this backup host" in message
    assert clock.now == pytest.approx(3.0)


def test_wait_gone_returns_after_detach_and_times_out_when_it_stays(tmp_path: Path) -> None:
    volume = tmp_path / "vol-3.raw"
    volume.write_bytes(b"x")
    link = DeviceLocator(tmp_path).path_for("vol-3")
    link.parent.mkdir(parents=True)
    link.symlink_to(volume)
    _locator(tmp_path, StepClock({2: link.unlink})).wait_gone("vol-3", timeout=10)
    assert not link.exists()

    link.symlink_to(volume)
    with pytest.raises(DeviceTimeoutError, match="still present"):
        _locator(tmp_path, StepClock()).wait_gone("vol-3", timeout=2)
