"""What downloaded (or uploaded) bytes really are: the image types the mesh accepts, checked by
parsing them with Pillow, whatever the sender said they were."""

from __future__ import annotations

import io
import warnings

from PIL import Image

from services.common.errors import InvalidArgument

# Pillow's format names -> the content types the mesh accepts.
FORMATS = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",  # multi-picture JPEG (phone cameras): a JPEG to every reader
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}
IMAGE_TYPES = tuple(dict.fromkeys(FORMATS.values()))

# Pillow's own decompression-bomb limit (about 89 million pixels), compared explicitly below.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
# Pillow only warns between its limit and twice it; a warning filter cannot be the check
# (catch_warnings is not thread-safe under to_thread), so the size is compared by hand instead
# and the warning, which would only repeat it, is not shown.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def sniff(data: bytes, max_pixels: int = MAX_PIXELS) -> str:
    """The content type the bytes really are; InvalidArgument when they are no accepted image
    or have more than `max_pixels` pixels.

    Blocking (Pillow parses the whole file structure): run it off the event loop.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format or ""
            width, height = image.size
            if width * height > max_pixels:
                raise InvalidArgument(
                    f"the image is too large to accept: {width}x{height} is more than "
                    f"{max_pixels} pixels"
                )
            image.verify()
    except InvalidArgument:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidArgument(f"the image is too large to accept: {exc}") from exc
    except Exception as exc:  # Pillow raises many types for bad bytes
        # Pillow's "cannot identify image file <_io.BytesIO object at 0x...>" says nothing more.
        reason = "" if isinstance(exc, Image.UnidentifiedImageError) else f" ({exc})"
        raise InvalidArgument(f"the bytes are not a readable image{reason}") from exc
    if fmt not in FORMATS:
        raise InvalidArgument(
            f"{fmt or 'this'} images are not accepted; use one of {', '.join(IMAGE_TYPES)}"
        )
    return FORMATS[fmt]
