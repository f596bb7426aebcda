"""Storage logic without gRPC: checks what callers send, writes under the key layout, makes links.

Everything a caller sends is checked before anything is written: a refused Put leaves the bucket
as it was. Put trusts the declared image type (its callers are mesh services that just encoded the
image) and checks it against the allow-list only; Fetch, whose bytes come from outside, parses them. Links are presigned GETs (expiry configurable) or `<public_base_url>/<key>`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote

from services.common import requestid
from services.common.errors import InvalidArgument
from services.storage.chunk_reader import ChunkReader
from services.storage.keys import check_key, check_prefix, file_name, make_key
from services.storage.links import LinkChecker
from services.storage.media_types import check_content_type
from services.storage.object_store import ObjectStore
from services.storage.settings import MAX_PRESIGN_SECONDS, StorageSettings

# S3 deletes at most 1000 keys per request.
MAX_DELETE_KEYS = 1000


@dataclass(frozen=True)
class Link:
    url: str
    expires_at: int  # unix seconds; 0 for a public link


@dataclass(frozen=True)
class Stored:
    bucket: str
    key: str
    url: str
    content_type: str
    size: int
    etag: str
    url_expires_at: int


@dataclass(frozen=True)
class Fetched:
    data: bytes
    content_type: str
    size: int


class Uploader:
    def __init__(self, settings: StorageSettings, store: ObjectStore) -> None:
        self._settings = settings
        self._store = store
        # gRPC framing needs a little room beside the payload.
        self._max_get_bytes = settings.max_message_bytes - 64 * 1024
        self._links = LinkChecker(settings.public_base_url, store.presign_get)

    def _plan(self, content_type: str, name: str, prefix: str) -> tuple[str, str]:
        """The checked content type and the key to write, or InvalidArgument."""
        mime = check_content_type(content_type)
        folder = check_prefix(prefix) if prefix else self._settings.upload_dir
        return mime, make_key(folder, file_name(name, mime))

    @staticmethod
    def _metadata() -> dict[str, str]:
        return {"request-id": requestid.get_request_id()}

    async def put(self, data: bytes, content_type: str, name: str = "", prefix: str = "") -> Stored:
        if not data:
            raise InvalidArgument("data: empty; send the image bytes")
        mime, key = self._plan(content_type, name, prefix)
        etag = await self._store.put_bytes(key, data, mime, self._metadata())
        return self._stored(key, mime, len(data), etag)

    async def put_stream(
        self,
        content_type: str,
        name: str,
        prefix: str,
        size: int,
        chunks: AsyncIterator[bytes],
    ) -> Stored:
        """Uploads chunks as they arrive; exactly `size` bytes must come, or nothing is stored.

        The size is required because a cancelled gRPC call ends its request stream just like a
        finished one (grpc.aio): without it, a cut upload would be stored truncated.
        """
        mime, key = self._plan(content_type, name, prefix)
        if size <= 0:
            raise InvalidArgument("header.size: required; give the total number of bytes to send")
        if size > self._settings.max_object_bytes:
            raise InvalidArgument(
                f"header.size: {size} bytes is over the {self._settings.max_object_bytes}-byte limit"
            )
        # Wait for real bytes before touching S3: an empty stream writes nothing.
        first = b""
        async for chunk in chunks:
            if chunk:
                first = chunk
                break
        if not first:
            raise InvalidArgument("chunk: no data after the header; send the image bytes")
        reader = ChunkReader(
            first,
            chunks,
            asyncio.get_running_loop(),
            max_bytes=self._settings.max_object_bytes,
            expected_size=size,
            idle_timeout=self._settings.stream_idle_timeout_seconds,
        )
        # Length unknown to the SDK: it uploads part by part as the reader fills them.
        try:
            etag = await self._store.put(key, reader, -1, mime, self._metadata())
        except asyncio.CancelledError:
            reader.abandon()
            raise
        return self._stored(key, mime, reader.total, etag)

    async def get(self, key: str, url: str = "") -> Fetched:
        """The object's bytes; `url`, when given, must be a link we issued for it that has not
        expired (`LinkRefused` otherwise, before S3 is asked)."""
        check_key(key)
        self._links.check(key, url)
        data, info = await self._store.get(key, self._max_get_bytes)
        return Fetched(data, info.content_type, len(data))

    async def presign(self, key: str, expires_seconds: int = 0) -> Link:
        """A link to an existing object (NOT_FOUND when there is none)."""
        check_key(key)
        if not 0 <= expires_seconds <= MAX_PRESIGN_SECONDS:
            raise InvalidArgument(
                f"expires_seconds: {expires_seconds} is out of range; use 1..{MAX_PRESIGN_SECONDS} "
                "or 0 for the default"
            )
        await self._store.stat(key)
        return self.link(key, expires_seconds)

    def link(self, key: str, expires_seconds: int = 0) -> Link:
        if self._settings.public_base_url:
            return Link(f"{self._settings.public_base_url}/{quote(key)}", 0)
        seconds = expires_seconds or self._settings.presign_expiry_seconds
        return Link(self._store.presign_get(key, seconds), int(time.time()) + seconds)

    async def delete(self, keys: list[str]) -> int:
        """Removes the keys; a key that did not exist counts as removed, as in S3."""
        if not keys:
            raise InvalidArgument("keys: empty; give the keys to delete")
        if len(keys) > MAX_DELETE_KEYS:
            raise InvalidArgument(f"keys: at most {MAX_DELETE_KEYS} per call, got {len(keys)}")
        for key in keys:
            check_key(key, field="keys")
        return await self._store.delete(list(keys))

    def _stored(self, key: str, mime: str, size: int, etag: str) -> Stored:
        link = self.link(key)
        return Stored(
            bucket=self._store.bucket,
            key=key,
            url=link.url,
            content_type=mime,
            size=size,
            etag=etag,
            url_expires_at=link.expires_at,
        )
