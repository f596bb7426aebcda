"""Real, decodable PNG bytes for the fakes to return (solid colour: small and fast to make)."""

from __future__ import annotations

import functools
import io

from PIL import Image


@functools.lru_cache(maxsize=64)
def png(width: int = 64, height: int = 64, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()
