"""Input images as clients give them -> checked image bytes for the mesh.

Accepted: an uploaded file's bytes, a `data:image/...;base64,` URL, bare base64, or an http(s)
URL. URLs are downloaded with the mesh's one fetcher (`services.common.fetch`: http(s) only, no
loopback/private/link-local address unless in GATEWAY_FETCH_ALLOW_NETWORKS, every redirect hop
checked, a timeout, a byte cap counted while streaming, image content only); any other scheme is
refused by name; links into our own bucket are read with Storage.Get instead. Every image must parse as PNG, JPEG, WebP, GIF, BMP or TIFF and stay within
the per-image cap (413 past it). Errors name the field (`image`, `image[1]`, `mask`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import urllib.parse
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

    async def close(self) -> None:
        await self._downloader.close()

    async def from_bytes(self, data: bytes, param: str) -> bytes:
        if not data:
            raise invalid(f"{param} is empty; upload a PNG, JPEG or WebP file", param)
        return await self._check(data, param)

    async def from_text(self, value: Any, param: str) -> bytes:
        """An image given in JSON: URL, data URL or bare base64."""
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
            return await self._download(text, param)
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

    async def _download(self, url: str, param: str) -> bytes:
        """A URL's checked image bytes (the download sniffs them; bucket objects are checked)."""
        key = self._own_key(url)
        if key is not None:
            return await self._check(await self._from_bucket(key, url, param), param)
        try:
            fetched = await self._downloader.download(url, field=param)
        except FetchFailed as exc:
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
                storage_pb2.GetRequest(key=key),
                deadline=self._settings.storage_deadline_seconds,
                what="storage",
                param=param,
            )
        except ApiError as exc:
            if exc.status == 404:
                raise invalid(
                    f"{param}: {shown(url)} is not in the bucket (HTTP 404)", param
                ) from None
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
