"""A blocking file-like view of an async stream of chunks, for the SDK's upload thread.

`minio.put_object` reads its parts with `read(n)` on a worker thread, while the chunks of a
PutStream call arrive on the event loop. `ChunkReader.read` asks the loop for the next chunks
(`run_coroutine_threadsafe`), so the upload goes out part by part as the client sends, with
backpressure, and only one part is held in memory. A `ServiceError` raised in `read` (too many
bytes, a size that does not match the header, an idle client) makes the SDK abort its multipart
upload and reaches the caller unchanged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator

from services.common.errors import Cancelled, DeadlineExceeded, InvalidArgument


class ChunkReader:
    def __init__(
        self,
        first: bytes,
        chunks: AsyncIterator[bytes],
        loop: asyncio.AbstractEventLoop,
        max_bytes: int,
        expected_size: int = 0,
        idle_timeout: float = 60.0,
    ) -> None:
        self._pending = [first] if first else []
        self._pending_bytes = len(first)
        self._chunks = chunks
        self._loop = loop
        self._max_bytes = max_bytes
        self._expected = expected_size
        self._idle_timeout = idle_timeout
        self.total = len(first)
        self._eof = False
        self._abandoned = False
        self._waiting: concurrent.futures.Future[bytes | None] | None = None
        self._check_total()

    def _check_total(self) -> None:
        if self.total > self._max_bytes:
            raise InvalidArgument(f"the object is larger than the {self._max_bytes}-byte limit")
        if self._expected and self.total > self._expected:
            raise InvalidArgument(
                f"header.size: {self._expected} bytes declared, more than that were sent"
            )

    def abandon(self) -> None:
        """The call is gone (cancelled, or shut down past its grace): stop reading at once.

        The SDK's thread then sees an error and aborts its multipart upload, instead of holding
        the thread until the idle timeout. Called on the event loop.
        """
        self._abandoned = True
        if self._waiting is not None:
            self._waiting.cancel()

    def _next_chunk(self) -> bytes | None:
        if self._abandoned:
            raise Cancelled("the upload was abandoned by its caller")
        future = asyncio.run_coroutine_threadsafe(anext(self._chunks, None), self._loop)
        self._waiting = future
        try:
            return future.result(timeout=self._idle_timeout)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise DeadlineExceeded(
                f"no chunk received for {self._idle_timeout:.0f} s; the upload was abandoned"
            ) from exc
        except concurrent.futures.CancelledError as exc:
            raise Cancelled("the upload was abandoned by its caller") from exc
        finally:
            self._waiting = None

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all that is left when -1); b"" at the end. Blocks: not on the loop."""
        while not self._eof and (size < 0 or self._pending_bytes < size):
            chunk = self._next_chunk()
            if chunk is None:
                self._eof = True
                if self._expected and self.total != self._expected:
                    raise InvalidArgument(
                        f"header.size: {self._expected} bytes declared, {self.total} sent"
                    )
                break
            self.total += len(chunk)
            self._check_total()
            self._pending.append(chunk)
            self._pending_bytes += len(chunk)
        data = b"".join(self._pending)
        if 0 <= size < len(data):
            data, rest = data[:size], data[size:]
            self._pending, self._pending_bytes = [rest], len(rest)
        else:
            self._pending, self._pending_bytes = [], 0
        return data
