"""What bytes are: accepted image types by content, whatever they were called."""

from __future__ import annotations

import struct
import warnings
import zlib

import pytest

from services.common.errors import InvalidArgument
from services.common.fetch import IMAGE_TYPES, sniff
from services.storage.media_types import EXTENSIONS
from tests.support.storage import png_bytes


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
)
def test_images_are_known_by_their_bytes(fmt: str, content_type: str) -> None:
    assert sniff(png_bytes(8, 8, seed=1, fmt=fmt)) == content_type


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"this is no image at all", "the bytes are not a readable image"),
        (b"", "the bytes are not a readable image"),
        (png_bytes(8, 8, seed=1)[:40], "not a readable image"),
    ],
)
def test_other_bytes_are_refused(data: bytes, says: str) -> None:
    with pytest.raises(InvalidArgument, match=says):
        sniff(data)


def test_the_bucket_stores_every_type_the_fetcher_accepts() -> None:
    assert set(IMAGE_TYPES) == set(EXTENSIONS)


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height (no pixel data: nothing is decoded)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body).to_bytes(4, "big")
        return len(body).to_bytes(4, "big") + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [10_000, 20_000])
def test_more_pixels_than_the_limit_are_refused_whatever_the_warning_filters(side: int) -> None:
    """10000x10000 is past Pillow's limit but under twice it, where Pillow only warns: the check
    does not depend on warning filters (another thread may have set them to ignore)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InvalidArgument, match="too large to accept"):
            sniff(_png_header(side, side))


def test_the_pixel_limit_is_compared_explicitly() -> None:
    assert sniff(png_bytes(32, 32, seed=1), max_pixels=32 * 32) == "image/png"
    with pytest.raises(InvalidArgument, match="33x32 is more than 1024 pixels"):
        sniff(png_bytes(33, 32, seed=1), max_pixels=1024)
