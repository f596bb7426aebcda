"""What bytes are: accepted image types by content, whatever they were called."""

from __future__ import annotations

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
