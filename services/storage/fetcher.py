"""Fetch: download a remote image into the bucket, safely.

Rules, each answered INVALID_ARGUMENT with what to fix, and nothing written when one fails:
http(s) only; every hop's host checked by `UrlPolicy` (redirects are followed here, one at a time,
so a redirect to an internal address is refused like a direct one); the whole download within
`fetch_timeout_seconds`; the body within `fetch_max_bytes`, counted while it streams; the answer's
Content-Type must be image/*, and Pillow must parse the bytes as an accepted image type, which is
the content type stored.
"""

from __future__ import annotations

import asyncio
from pathlib import PurePosixPath

import httpx

from services.common.errors import InvalidArgument
from services.storage.keys import check_name, check_prefix
from services.storage.media_types import sniff
from services.storage.settings import StorageSettings
from services.storage.uploader import Fetched, Stored, Uploader
from services.storage.url_policy import Target, UrlPolicy, shown


class Fetcher:
    def __init__(
        self,
        settings: StorageSettings,
        uploader: Uploader,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._uploader = uploader
        self._policy = UrlPolicy(settings.fetch_allow_networks)
        self._max_bytes = settings.fetch_max_bytes
        self._timeout = settings.fetch_timeout_seconds
        self._max_redirects = settings.fetch_max_redirects
        self._client = client or httpx.AsyncClient(
            # Proxies from the environment would connect on our behalf, past the address check.
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(settings.fetch_timeout_seconds),
            # Connections go to checked addresses; reusing one for another host name is not
            # worth the doubt (a TLS session verified for a different name).
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def fetch(self, url: str, name: str = "", prefix: str = "") -> Stored:
        """Downloads `url` and stores it like a Put (name and prefix as in Put)."""
        if name:
            check_name(name)
        if prefix:
            check_prefix(prefix)
        fetched = await self.download(url)
        return await self._uploader.put(
            fetched.data, fetched.content_type, name or _name_from(url), prefix
        )

    async def download(self, url: str) -> Fetched:
        if not url:
            raise InvalidArgument("url: required; give an http:// or https:// URL")
        try:
            async with asyncio.timeout(self._timeout):
                data = await self._follow(url)
        except TimeoutError as exc:
            raise InvalidArgument(
                f"url: {shown(url)} took longer than {self._timeout:g} s to download"
            ) from exc
        content_type = await asyncio.to_thread(sniff, data)
        return Fetched(data, content_type, len(data))

    async def _follow(self, url: str) -> bytes:
        current: str | httpx.URL = url
        for _hop in range(self._max_redirects + 1):
            target = await self._policy.resolve(current)
            try:
                response = await self._client.send(self._request(target), stream=True)
            except httpx.HTTPError as exc:
                raise InvalidArgument(
                    f"url: could not download {shown(target.url)}: {_reason(exc)}"
                ) from exc
            try:
                if response.is_redirect:
                    current = target.url.join(response.headers["location"])
                    continue
                return await self._read_image(target, response)
            finally:
                await response.aclose()
        raise InvalidArgument(f"url: {shown(url)} redirected more than {self._max_redirects} times")

    @staticmethod
    def _request(target: Target) -> httpx.Request:
        return httpx.Request(
            "GET",
            target.pinned_url,
            headers={
                "Host": target.host_header,
                "Accept": "image/*",
                # Counted bytes are the bytes stored: no decompression on the way.
                "Accept-Encoding": "identity",
                "User-Agent": "imagemesh-storage/1",
            },
            extensions={"sni_hostname": target.server_name} if target.secure else {},
        )

    async def _read_image(self, target: Target, response: httpx.Response) -> bytes:
        where = shown(target.url)
        if not response.is_success:
            raise InvalidArgument(f"url: {where} answered HTTP {response.status_code}")
        content_type = response.headers.get("content-type", "")
        if not content_type.lower().startswith("image/"):
            raise InvalidArgument(
                f"url: {where} is not an image (Content-Type: {content_type or 'none'})"
            )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise InvalidArgument(self._too_large(where))
        body = bytearray()
        try:
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > self._max_bytes:
                    raise InvalidArgument(self._too_large(where))
        except httpx.HTTPError as exc:
            raise InvalidArgument(f"url: could not download {where}: {_reason(exc)}") from exc
        if not body:
            raise InvalidArgument(f"url: {where} answered an empty body")
        return bytes(body)

    def _too_large(self, where: str) -> str:
        return f"url: {where} is larger than the {self._max_bytes}-byte limit for fetched images"


def _reason(exc: httpx.HTTPError) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _name_from(url: str) -> str:
    """The URL's last path segment when it is a usable name; empty (a random name) otherwise."""
    candidate = PurePosixPath(httpx.URL(url).path).name
    try:
        return check_name(candidate) if candidate else ""
    except InvalidArgument:
        return ""
