"""Tiny, randomly initialised Qwen-Image pipelines of the real architecture, built offline.

No model hub is reachable and no GPU is present where imagemesh is developed and tested, so the
model servers default to these: same classes, same `from_pretrained` path as `Qwen/Qwen-Image`,
about 3 MB each. Their pictures are noise; they prove the plumbing. Build them with
`python -m services.tinymodels --out models` (what `make setup` runs).
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO_ROOT / "models"
TINY_IMAGE_DIR = MODELS_DIR / "qwen-image-tiny"
TINY_EDIT_DIR = MODELS_DIR / "qwen-image-edit-tiny"
TINY_EDIT_PLUS_DIR = MODELS_DIR / "qwen-image-edit-plus-tiny"
