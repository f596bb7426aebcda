"""Image bytes in and out of the providers: result downloads and input decoding.

Provider result URLs expire (DashScope 24 h, LiblibAI 7 days), so every result is downloaded
here and handed back as bytes, with the mesh's one fetcher (`services.common.fetch`): every hop's
address checked (a result URL, or a redirect, to an internal address not in
PROVIDERS_FETCH_ALLOW_NETWORKS is refused), a size cap, the bytes sniffed. The fetcher's client is
separate from the providers' clients, so no API key is ever sent to a storage host.

A result URL that fails is the provider's failure (ABORTED, the gateway's 502), or UNAVAILABLE
when worth another attempt (5xx, no connection), retried like any upstream call; an input image
URL that fails is the caller's (INVALID_ARGUMENT), except for the same retryable cases.
"""

from __future__ import annotations

import base64
import binascii
import io

import PIL.Image

from services.common.errors import (
    DeadlineExceeded,
    InvalidArgument,
    ProviderFailed,
    ServiceError,
)
from services.common.fetch import Downloaded, Downloader, FetchFailed, FetchRules, shown
from services.providers import deadline
from services.providers.settings import ProvidersSettings
from services.providers.types import Image, ImageInput
from services.providers.upstream import Transient, Upstream

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)


def sniff_mime(data: bytes) -> str | None:
    """The image type of `data` from its first bytes, or None when it is not a known image."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, mime in _SIGNATURES:
        if data.startswith(magic):
            return mime
    return None


def to_image(data: bytes, seed: int = 0) -> Image:
    """An Image with its type and size read from the bytes; ProviderFailed when not an image."""
    mime = sniff_mime(data)
    try:
        with PIL.Image.open(io.BytesIO(data)) as img:  # reads the header only
            width, height = img.size
    except (OSError, ValueError) as exc:
        raise ProviderFailed(
            f"the provider returned something that is not an image: {exc}"
        ) from exc
    return Image(data=data, mime_type=mime or "image/png", width=width, height=height, seed=seed)


def decode_base64(text: str, what: str) -> bytes:
    """Bytes of a data: URL or bare base64 string; InvalidArgument naming `what` otherwise."""
    if text.startswith("data:"):
        header, sep, text = text.partition(",")
        if not sep or ";base64" not in header:
            raise InvalidArgument(f"{what}: a data: URL must be base64 (data:image/png;base64,...)")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgument(
            f"{what}: not an http(s) URL, a data: URL or base64 image data"
        ) from exc


class ImageFetcher:
    def __init__(self, settings: ProvidersSettings) -> None:
        self.settings = settings
        self.max_bytes = settings.max_image_bytes
        self._downloader = Downloader(
            FetchRules(
                max_bytes=settings.max_image_bytes,
                timeout_seconds=settings.request_timeout_seconds,
                max_redirects=settings.fetch_max_redirects,
                allow_networks=settings.fetch_allow_networks,
                # Provider storage hosts may label images application/octet-stream; the bytes
                # are sniffed either way.
                image_content_type=False,
                user_agent="imagemesh-providers/1",
            )
        )
        # Retries as for the providers' own calls (its client is never used: no auth headers).
        self._upstream = Upstream(settings, label="image host", base_url="", key_env="")

    async def aclose(self) -> None:
        await self._downloader.close()
        await self._upstream.aclose()

    async def download(self, url: str, what: str = "result image", result: bool = True) -> bytes:
        """The image at `url`, at most `max_image_bytes`, retried like any upstream call.
        `result`: the URL is the provider's (its failures are the provider's) rather than the
        caller's."""
        if result and not url.startswith(("http://", "https://")):
            raise ProviderFailed(f"{what}: the provider returned an unusable URL {url[:100]!r}")

        async def attempt() -> Downloaded:
            timeout = deadline.budget(self.settings.request_timeout_seconds, "an image download")
            try:
                return await self._downloader.download(url, field=what, timeout=timeout)
            except FetchFailed as exc:
                raise self._failure(exc, url, what, result) from exc

        return (await self._upstream.retrying(attempt)).data

    def _failure(self, exc: FetchFailed, url: str, what: str, result: bool) -> ServiceError:
        retryable = exc.reason == "unreachable" or (
            exc.reason == "status" and (exc.status >= 500 or exc.status == 408)
        )
        if retryable:
            return Transient(exc.message)
        if exc.reason == "timeout":
            left = deadline.remaining()
            if left is not None and left <= 0.05:
                return DeadlineExceeded(f"deadline passed while downloading the {what}")
            return Transient(exc.message)
        if exc.reason == "too_large":
            message = f"{what} is larger than the {self.max_bytes} byte limit ({shown(url)})"
            return ProviderFailed(message) if result else InvalidArgument(message)
        if not result:
            return exc
        if exc.reason == "refused":
            return ProviderFailed(
                f"{exc.message}: the provider's result URL was refused (internal networks may "
                "be fetched only when listed in PROVIDERS_FETCH_ALLOW_NETWORKS)"
            )
        if exc.reason == "status":
            return ProviderFailed(f"{exc.message} (expired or withheld)")
        return ProviderFailed(f"the provider's {exc.message}")

    async def fetch(self, url: str, seed: int = 0, what: str = "result image") -> Image:
        return to_image(await self.download(url, what), seed)

    async def load(self, source: ImageInput, what: str) -> bytes:
        """The bytes of an input image: given bytes, a data: URL, base64, or an http(s) URL."""
        if source.data:
            data = source.data
        elif source.url.startswith(("http://", "https://")):
            data = await self.download(source.url, what, result=False)
        elif source.url:
            data = decode_base64(source.url, what)
        else:
            raise InvalidArgument(f"{what}: empty image (give bytes or a URL)")
        if len(data) > self.max_bytes:
            raise InvalidArgument(f"{what}: larger than the {self.max_bytes} byte limit")
        if sniff_mime(data) is None:
            raise InvalidArgument(f"{what}: not a PNG, JPEG, WebP, GIF or BMP image")
        return data
