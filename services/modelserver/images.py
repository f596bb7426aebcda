"""Image bytes in and out of the model servers: decode an input, encode an output.

Inputs are checked before any pipeline work: a payload that is not an image, or one that would
decompress into more pixels than the server allows, is an `InvalidArgument` naming the field.
Outputs are PNG unless the caller asked otherwise.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from services.common.errors import InvalidArgument

FORMATS = {
    # name: (PIL format, mime type, save options)
    "png": ("PNG", "image/png", {"compress_level": 1}),
    "jpeg": ("JPEG", "image/jpeg", {"quality": 95}),
    "webp": ("WEBP", "image/webp", {"quality": 95}),
}
# Formats whose `quality` OpenAI's `output_compression` (0..100, 100 = best) sets; PNG is
# lossless and ignores it, as OpenAI's API does.
LOSSY = frozenset({"jpeg", "webp"})
DEFAULT_COMPRESSION = 95


@dataclass(frozen=True)
class EncodedImage:
    data: bytes
    mime_type: str
    width: int
    height: int
    seed: int


def encode_image(
    image: Image.Image, output_format: str, seed: int, compression: int | None = None
) -> EncodedImage:
    """Encodes a PIL image; PNG at compression level 1 (noise-like images barely compress more,
    and level 6, PIL's default, costs several times the CPU for a 1024x1024 picture); JPEG and
    WebP at quality `compression` (None: 95)."""
    pil_format, mime, options = FORMATS[output_format]
    if output_format in LOSSY and compression is not None:
        options = {**options, "quality": compression}
    buffer = io.BytesIO()
    image.save(buffer, format=pil_format, **options)
    return EncodedImage(buffer.getvalue(), mime, image.width, image.height, seed)


def decode_image(data: bytes, field: str, max_pixels: int) -> Image.Image:
    """Decodes an input image to RGB, or raises `InvalidArgument` saying what is wrong with it."""
    if not data:
        raise InvalidArgument(f"{field}: empty; send the image bytes (PNG, JPEG, WebP...)")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            if width * height > max_pixels:
                raise InvalidArgument(
                    f"{field}: {width}x{height} is too large; at most {max_pixels} pixels"
                )
            probe.load()
            return probe.convert("RGB")
    except InvalidArgument:
        raise
    except UnidentifiedImageError as exc:
        raise InvalidArgument(
            f"{field}: not a decodable image ({len(data)} bytes in no format the server reads; "
            "send PNG, JPEG or WebP bytes)"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise InvalidArgument(f"{field}: too large ({exc})") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidArgument(
            f"{field}: not a decodable image (corrupt or truncated: {exc})"
        ) from exc
