"""How records are framed in a stream on sequential media: tag u8, payload length u32
big-endian, payload (the tags and their meaning: pools/stream.py and format/constants.py).
The framing alone, so the media layer reads a stream file's header without the pool layer."""

from __future__ import annotations

from collections.abc import Iterator

from bingobackup.format.constants import STREAM_TAG as TAG

Buffer = bytes | bytearray | memoryview


def record(tag: bytes, payload: Buffer) -> bytes:
    return TAG.pack(tag, len(payload)) + bytes(payload)


def parse_stream(data: bytes) -> Iterator[tuple[bytes, int, bytes]]:
    """(tag, offset of the payload, payload) of every complete record of a stream file."""
    position = 0
    while position + TAG.size <= len(data):
        tag, length = TAG.unpack_from(data, position)
        start = position + TAG.size
        if start + length > len(data):
            return  # an aborted stream's tail
        yield tag, start, data[start : start + length]
        position = start + length
