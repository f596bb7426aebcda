"""Fetch: download a remote image into the bucket, with the mesh's one safe fetcher.

The rules are `services.common.fetch` (http(s) only, every redirect hop's address checked against
the allow-list, the whole download within `fetch_timeout_seconds`, the body within
`fetch_max_bytes` counted while it streams, Content-Type image/* and bytes Pillow reads as an
accepted type, which is the content type stored). Each failure is INVALID_ARGUMENT naming `url`,
and nothing is written when one fails.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import httpx

from services.common.errors import InvalidArgument
from services.common.fetch import Downloader, FetchRules
from services.storage.keys import check_name, check_prefix
from services.storage.settings import StorageSettings
from services.storage.uploader import Stored, Uploader


def fetch_rules(settings: StorageSettings) -> FetchRules:
    return FetchRules(
        max_bytes=settings.fetch_max_bytes,
        timeout_seconds=settings.fetch_timeout_seconds,
        max_redirects=settings.fetch_max_redirects,
        allow_networks=settings.fetch_allow_networks,
        user_agent="imagemesh-storage/1",
    )


class Fetcher:
    def __init__(self, downloader: Downloader, uploader: Uploader) -> None:
        self._downloader = downloader
        self._uploader = uploader

    async def close(self) -> None:
        await self._downloader.close()

    async def fetch(self, url: str, name: str = "", prefix: str = "") -> Stored:
        """Downloads `url` and stores it like a Put (name and prefix as in Put)."""
        if name:
            check_name(name)
        if prefix:
            check_prefix(prefix)
        fetched = await self._downloader.download(url)
        return await self._uploader.put(
            fetched.data, fetched.content_type, name or _name_from(url), prefix
        )


def _name_from(url: str) -> str:
    """The URL's last path segment when it is a usable name; empty (a random name) otherwise."""
    candidate = PurePosixPath(httpx.URL(url).path).name
    try:
        return check_name(candidate) if candidate else ""
    except InvalidArgument:
        return ""
