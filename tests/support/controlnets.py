"""The tiny ControlNets (`services/tinymodels/controlnet.py`), built on first use, and control
pictures for the tests."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from services.tinymodels import MODELS_DIR

CONTROL = "qwen-image-controlnet-tiny"
DEPTH = "qwen-image-controlnet-depth-tiny"
INPAINTING = "qwen-image-controlnet-inpainting-tiny"


def ensure_tiny_controlnets() -> list[str]:
    """Builds the tiny ControlNets if missing or stale; returns their folders, as a server's
    CONTROLNET_LOCATION lists them."""
    from services.tinymodels.controlnet import build_controlnets

    return [str(folder) for folder in build_controlnets(MODELS_DIR)]


def stripes(width: int = 64, height: int = 64, period: int = 16) -> bytes:
    """Diagonal stripes, a control picture with edges everywhere, as PNG."""
    lines = (np.indices((height, width)).sum(0) % period < period // 2).astype(np.uint8) * 255
    return _png(Image.fromarray(lines).convert("RGB"))


def disc(width: int = 64, height: int = 64) -> bytes:
    """A white disc on black: another control picture (a "depth" map), as PNG."""
    y, x = np.indices((height, width))
    inside = (x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(width, height) / 3) ** 2
    return _png(Image.fromarray(inside.astype(np.uint8) * 255).convert("RGB"))


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
