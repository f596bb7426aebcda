"""The image types the bucket accepts: content types and their file extensions.

What bytes really are is sniffed by `services.common.fetch.sniff`, whose types these are."""

from __future__ import annotations

from services.common.errors import InvalidArgument

EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/bmp": ".bmp",
    "image/tiff": ".tiff",
}
ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}


def check_content_type(value: str, field: str = "content_type") -> str:
    """The normalised content type (`image/png`...), or InvalidArgument naming the accepted ones."""
    mime = value.split(";", 1)[0].strip().lower()
    mime = ALIASES.get(mime, mime)
    if mime in EXTENSIONS:
        return mime
    shown = repr(value) if value else "empty"
    raise InvalidArgument(f"{field}: {shown} is not accepted; use one of {', '.join(EXTENSIONS)}")


def extension(content_type: str) -> str:
    return EXTENSIONS[content_type]
