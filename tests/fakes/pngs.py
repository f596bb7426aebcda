"""Real, decodable PNG bytes for the fakes to return (solid colour: small and fast to make)."""

from __future__ import annotations

import functools
import io
import random

from PIL import Image


@functools.lru_cache(maxsize=64)
def png(width: int = 64, height: int = 64, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


@functools.lru_cache(maxsize=8)
def noise_png(width: int, height: int, seed: int = 0) -> bytes:
    """A PNG of random pixels: it does not compress, so its size grows with width x height."""
    rng = random.Random(seed)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3)).save(
        buffer, format="PNG", compress_level=1
    )
    return buffer.getvalue()
