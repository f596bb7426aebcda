"""The image types the bucket accepts: content types, their file extensions, and sniffing."""

from __future__ import annotations

import io
import warnings

from PIL import Image

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
# Pillow's format names for the types above.
FORMATS = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",  # multi-picture JPEG (phone cameras): a JPEG to every reader
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}


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


def sniff(data: bytes) -> str:
    """The content type the bytes really are, checked by parsing them with Pillow.

    Blocking (Pillow parses the whole file structure): run it off the event loop.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt = image.format or ""
                image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidArgument(f"the image is too large to accept: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad bytes
        # Pillow's "cannot identify image file <_io.BytesIO object at 0x...>" says nothing more.
        reason = "" if isinstance(exc, Image.UnidentifiedImageError) else f" ({exc})"
        raise InvalidArgument(f"the bytes are not a readable image{reason}") from exc
    if fmt not in FORMATS:
        raise InvalidArgument(
            f"{fmt or 'this'} images are not accepted; use one of {', '.join(EXTENSIONS)}"
        )
    return FORMATS[fmt]
