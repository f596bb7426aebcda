"""ChunkReader: the SDK's blocking reads served from an async stream, with its limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from services.common.errors import DeadlineExceeded, InvalidArgument
from services.storage.chunk_reader import ChunkReader


async def _chunks(*parts: bytes, stall: asyncio.Event | None = None) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
    if stall is not None:
        await stall.wait()


def _read_all(reader: ChunkReader, size: int) -> list[bytes]:
    """Reads as the SDK does, `size` bytes at a time, on a worker thread."""
    out = []
    while data := reader.read(size):
        out.append(data)
    return out


async def test_reads_come_in_the_sizes_asked_for() -> None:
    reader = ChunkReader(
        b"ab", _chunks(b"cde", b"f", b"ghij"), asyncio.get_running_loop(), max_bytes=100
    )
    parts = await asyncio.to_thread(_read_all, reader, 4)
    assert parts == [b"abcd", b"efgh", b"ij"]
    assert reader.total == 10


async def test_the_declared_size_must_match() -> None:
    loop = asyncio.get_running_loop()
    short = ChunkReader(b"ab", _chunks(b"cd"), loop, max_bytes=100, expected_size=5)
    with pytest.raises(InvalidArgument, match="5 bytes declared, 4 sent"):
        await asyncio.to_thread(_read_all, short, 10)
    long = ChunkReader(b"ab", _chunks(b"cdef"), loop, max_bytes=100, expected_size=5)
    with pytest.raises(InvalidArgument, match="5 bytes declared, more than that were sent"):
        await asyncio.to_thread(_read_all, long, 10)


async def test_the_size_limit_stops_the_stream() -> None:
    reader = ChunkReader(b"abc", _chunks(b"def"), asyncio.get_running_loop(), max_bytes=5)
    with pytest.raises(InvalidArgument, match="larger than the 5-byte limit"):
        await asyncio.to_thread(_read_all, reader, 10)


async def test_an_idle_client_is_cut_off() -> None:
    stall = asyncio.Event()
    reader = ChunkReader(
        b"abc", _chunks(stall=stall), asyncio.get_running_loop(), max_bytes=100, idle_timeout=0.2
    )
    try:
        with pytest.raises(DeadlineExceeded, match="no chunk received"):
            await asyncio.to_thread(_read_all, reader, 10)
    finally:
        stall.set()
