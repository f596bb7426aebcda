"""Tiny, randomly initialised Qwen-Image pipelines of the real architecture, built offline.

No model hub is reachable and no GPU is present where imagemesh is developed and tested, so the
model servers default to these: same classes, same `from_pretrained` path as `Qwen/Qwen-Image`,
about 3 MB each. Their pictures are noise; they prove the plumbing. Build them with
`python -m services.tinymodels --out models` (what `make setup` runs).
"""

from __future__ import annotations

# The folders are the model servers' default weights, so their settings name them.
from services.modelserver.settings import (
    MODELS_DIR,
    PROJECT_ROOT,
    TINY_EDIT_DIR,
    TINY_EDIT_PLUS_DIR,
    TINY_IMAGE_DIR,
)

__all__ = ["MODELS_DIR", "PROJECT_ROOT", "TINY_EDIT_DIR", "TINY_EDIT_PLUS_DIR", "TINY_IMAGE_DIR"]
