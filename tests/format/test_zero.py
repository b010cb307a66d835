"""Zero detection decides what is stored as nothing and what a restore leaves as a hole."""

from __future__ import annotations

import pytest

from bingobackup.format.zero import is_zero

CHUNK = 1 << 20


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_all_zero_buffers_of_every_kind_are_zero(kind: type) -> None:
    assert is_zero(kind(bytes(CHUNK)))
    assert is_zero(kind(b""))


@pytest.mark.parametrize("position", [0, 1, CHUNK // 2, CHUNK - 1])
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_one_non_zero_byte_anywhere_is_found(kind: type, position: int) -> None:
    data = bytearray(CHUNK)
    data[position] = 1
    assert not is_zero(kind(data))


def test_memoryview_slices_are_judged_by_their_own_bytes() -> None:
    data = bytearray(3 * 4096)
    data[4096] = 7
    view = memoryview(data)
    assert is_zero(view[:4096]) and is_zero(view[4097:])
    assert not is_zero(view[4000:4200])


def test_views_of_wider_items_count_bytes_not_items() -> None:
    assert is_zero(memoryview(bytes(64)).cast("Q"))
    assert not is_zero(memoryview(bytes(63) + b"\x01").cast("Q"))
