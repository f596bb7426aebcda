"""Input images as clients give them -> checked image bytes for the mesh.

Accepted: an uploaded file's bytes, a `data:image/...;base64,` URL, bare base64, or an http(s)
URL. URLs are downloaded with the mesh's one fetcher (`services.common.fetch`: http(s) only, no
loopback/private/link-local address unless in GATEWAY_FETCH_ALLOW_NETWORKS, every redirect hop
checked, a timeout, a byte cap counted while streaming, image content only); any other scheme is
refused by name; links into our own bucket are read with Storage.Get instead, which refuses
(403) a link it did not issue or one past its expiry. Every image must parse as PNG, JPEG, WebP,
GIF, BMP or TIFF and stay within the per-image cap (413 past it). Errors name the field (`image`, `image[1]`, `mask`).

`load_all` loads one request's images: a few downloads at once per request
(GATEWAY_FETCH_CONCURRENCY_PER_REQUEST) and in the whole gateway (GATEWAY_FETCH_CONCURRENCY), and
all of a request's images within GATEWAY_MAX_REQUEST_IMAGE_BYTES together.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from imagemesh.v1 import storage_pb2

from services.common.errors import InvalidArgument
from services.common.fetch import Downloader, FetchFailed, FetchRules, shown, sniff
from services.gateway.clients import Backends
from services.gateway.errors import ApiError, invalid, too_large
from services.gateway.settings import GatewaySettings

# `scheme://...`: a URL (refused by name unless http(s)), not base64, which has no ':'.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MiB" if n >= 1024 * 1024 else f"{n} bytes"


class ImageSources:
    def __init__(self, settings: GatewaySettings, backends: Backends) -> None:
        self._settings = settings
        self._backends = backends
        self._max = settings.max_image_bytes
        self._downloader = Downloader(
            FetchRules(
                max_bytes=settings.max_image_bytes,
                timeout_seconds=settings.fetch_timeout_seconds,
                max_redirects=settings.fetch_max_redirects,
                allow_networks=settings.fetch_allow_networks,
                user_agent="imagemesh-gateway/1",
            )
        )
        self._own = [p if p.endswith("/") else p + "/" for p in settings.storage_link_prefixes]
        # Downloads at once by the whole gateway (each request has its own bound too).
        self._fetching = asyncio.Semaphore(settings.fetch_concurrency)

    async def close(self) -> None:
        await self._downloader.close()

    async def load_all(self, inputs: Sequence[Input]) -> list[bytes]:
        """One request's input images, checked, in order: at most
        `fetch_concurrency_per_request` downloads at once, all of them together within
        `max_request_image_bytes` (413 past it; each download stops at what the others left).
        The first failure cancels the loads still running and is raised."""
        budget = _Budget(self._settings.max_request_image_bytes)
        at_once = asyncio.Semaphore(self._settings.fetch_concurrency_per_request)

        async def one(given: Input) -> bytes:
            async with at_once:
                if given.data is not None:
                    data = await self.from_bytes(given.data, given.param)
                else:
                    data = await self.from_text(given.text, given.param, budget.left())
            budget.take(len(data), given.param)
            return data

        tasks = [asyncio.ensure_future(one(given)) for given in inputs]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:
                task.cancel()

    async def from_bytes(self, data: bytes, param: str) -> bytes:
        if not data:
            raise invalid(f"{param} is empty; upload a PNG, JPEG or WebP file", param)
        return await self._check(data, param)

    async def from_text(self, value: Any, param: str, budget: int | None = None) -> bytes:
        """An image given in JSON: URL, data URL or bare base64. `budget`: the most bytes a
        download may bring (what the request's other images left)."""
        if isinstance(value, dict) and isinstance(value.get("image_url"), str | dict):
            # OpenAI's {"image_url": "..."} / {"image_url": {"url": "..."}} forms.
            inner = value["image_url"]
            value = inner.get("url") if isinstance(inner, dict) else inner
        elif isinstance(value, dict) and isinstance(value.get("url"), str):
            value = value["url"]
        if not isinstance(value, str):
            raise invalid(
                f"{param} must be a string: an http(s) URL, a data: URL or base64 image bytes",
                param,
            )
        text = value.strip()
        if not text:
            raise invalid(f"{param} is empty; give an http(s) URL, a data: URL or base64", param)
        if text.startswith("data:"):
            data = self._data_url(text, param)
        elif _URL.match(text):
            return await self._download(text, param, budget)
        else:
            data = self._base64(text, param, "base64 image bytes")
        return await self._check(data, param)

    def _data_url(self, text: str, param: str) -> bytes:
        header, sep, payload = text.partition(",")
        if not sep or not header.endswith(";base64"):
            raise invalid(
                f"{param}: a data URL must look like data:image/png;base64,<base64 bytes>", param
            )
        mime = header[5:].split(";", 1)[0].lower()
        if mime and not mime.startswith("image/"):
            raise invalid(f"{param}: the data URL's type is {mime!r}; it must be image/*", param)
        return self._base64(payload, param, "its data URL payload")

    def _base64(self, text: str, param: str, what: str) -> bytes:
        # Refuse before decoding: base64 is 4/3 of the bytes it holds.
        if len(text) * 3 // 4 > self._max:
            raise too_large(f"{param} is larger than the {_mib(self._max)} per-image limit", param)
        try:
            return base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            raise invalid(
                f"{param}: {what} is not valid base64; give an http(s) URL, a data: URL "
                "(data:image/png;base64,...) or base64 image bytes",
                param,
            ) from None

    async def _download(self, url: str, param: str, budget: int | None = None) -> bytes:
        """A URL's checked image bytes (the download sniffs them; bucket objects are checked)."""
        key = self._own_key(url)
        if key is not None:
            return await self._check(await self._from_bucket(key, url, param), param)
        try:
            async with self._fetching:
                fetched = await self._downloader.download(url, field=param, max_bytes=budget)
        except FetchFailed as exc:
            if exc.reason == "too_large" and budget is not None and budget < self._max:
                raise too_large(
                    _over_budget(self._settings.max_request_image_bytes), param
                ) from None
            if exc.reason == "too_large":
                raise too_large(
                    f"{param}: {shown(url)} is larger than the {_mib(self._max)} per-image limit",
                    param,
                ) from None
            if exc.reason == "not_image" and "readable image" in exc.detail:
                raise invalid(f"{exc.message}; send a PNG, JPEG or WebP image", param) from None
            raise invalid(exc.message, param) from None
        return fetched.data

    def _own_key(self, url: str) -> str | None:
        for prefix in self._own:
            if url.startswith(prefix):
                path = urllib.parse.urlsplit(url[len(prefix) :]).path
                return urllib.parse.unquote(path)
        return None

    async def _from_bucket(self, key: str, url: str, param: str) -> bytes:
        try:
            answer = await self._backends.unary(
                "storage",
                self._backends.storage.Get,
                # The storage service checks the link is one it issued and not expired (403).
                storage_pb2.GetRequest(key=key, url=url),
                deadline=self._settings.storage_deadline_seconds,
                what="storage",
                param=param,
            )
        except ApiError as exc:
            if exc.status == 404:
                raise invalid(
                    f"{param}: {shown(url)} is not in the bucket (HTTP 404)", param
                ) from None
            if exc.status == 403:
                raise ApiError(403, f"{param}: {exc.message}", param) from None
            raise
        return bytes(answer.data)

    async def _check(self, data: bytes, param: str) -> bytes:
        if len(data) > self._max:
            raise too_large(
                f"{param} is {_mib(len(data))}; the per-image limit is {_mib(self._max)}", param
            )
        try:
            await asyncio.to_thread(sniff, data)
        except InvalidArgument as exc:
            raise invalid(
                f"{param}: {exc.message}; send a PNG, JPEG or WebP image", param
            ) from None
        return data


@dataclass(frozen=True)
class Input:
    """One input image as a request gave it: uploaded bytes, or JSON text (URL, data URL,
    base64); `param` names it in messages."""

    param: str
    data: bytes | None = None
    text: Any = None


def _over_budget(limit: int) -> str:
    return (
        f"the input images of this request are more than {_mib(limit)} in all (the limit per "
        "request); send fewer or smaller images"
    )


class _Budget:
    """Bytes of input images one request may still bring."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def left(self) -> int:
        return max(self.limit - self.used, 0)

    def take(self, size: int, param: str) -> None:
        self.used += size
        if self.used > self.limit:
            raise too_large(_over_budget(self.limit), param)
