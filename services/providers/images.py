"""Image bytes in and out of the providers: result downloads and input decoding.

Provider result URLs expire (DashScope 24 h, LiblibAI 7 days), so every result is downloaded
here, with a size cap, and handed back as bytes. The download client is separate from the
providers' clients so that no API key is ever sent to a storage host.
"""

from __future__ import annotations

import base64
import binascii
import io

import httpx
import PIL.Image

from services.common.errors import InvalidArgument, ProviderFailed
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
        # Retries and timeouts as for the providers; no auth headers on this client.
        self._upstream = Upstream(settings, label="image host", base_url="", key_env="")
        self._upstream.client.follow_redirects = True

    async def aclose(self) -> None:
        await self._upstream.aclose()

    async def download(self, url: str, what: str = "result image") -> bytes:
        """The bytes at `url`, at most `max_image_bytes`; retried like any upstream call."""
        if not url.startswith(("http://", "https://")):
            raise ProviderFailed(f"{what}: the provider returned an unusable URL {url[:100]!r}")

        async def attempt() -> bytes:
            timeout = deadline.budget(self.settings.request_timeout_seconds, "an image download")
            try:
                async with self._upstream.client.stream("GET", url, timeout=timeout) as response:
                    if response.status_code >= 500:
                        raise Transient(f"{what}: {url[:120]} answered HTTP {response.status_code}")
                    if response.status_code >= 400:
                        raise ProviderFailed(
                            f"{what}: {url[:120]} answered HTTP {response.status_code} "
                            "(expired or withheld)"
                        )
                    size = int(response.headers.get("content-length") or 0)
                    if size > self.max_bytes:
                        raise ProviderFailed(self._too_large(what, size))
                    chunks, total = [], 0
                    async for chunk in response.aiter_bytes():
                        total += len(chunk)
                        if total > self.max_bytes:
                            raise ProviderFailed(self._too_large(what, total))
                        chunks.append(chunk)
                    return b"".join(chunks)
            except httpx.TransportError as exc:
                raise self._upstream.transport_error(exc) from exc

        return await self._upstream.retrying(attempt)

    def _too_large(self, what: str, size: int) -> str:
        return f"{what} is larger than the {self.max_bytes} byte limit ({size} bytes or more)"

    async def fetch(self, url: str, seed: int = 0, what: str = "result image") -> Image:
        return to_image(await self.download(url, what), seed)

    async def load(self, source: ImageInput, what: str) -> bytes:
        """The bytes of an input image: given bytes, a data: URL, base64, or an http(s) URL."""
        if source.data:
            data = source.data
        elif source.url.startswith(("http://", "https://")):
            data = await self.download(source.url, what)
        elif source.url:
            data = decode_base64(source.url, what)
        else:
            raise InvalidArgument(f"{what}: empty image (give bytes or a URL)")
        if len(data) > self.max_bytes:
            raise InvalidArgument(f"{what}: larger than the {self.max_bytes} byte limit")
        if sniff_mime(data) is None:
            raise InvalidArgument(f"{what}: not a PNG, JPEG, WebP, GIF or BMP image")
        return data
