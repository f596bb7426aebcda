"""The tiny pipelines the model-server tests run on, built on first use (idempotent, seconds)."""

from __future__ import annotations

from services.tinymodels import MODELS_DIR, TINY_EDIT_DIR, TINY_EDIT_PLUS_DIR, TINY_IMAGE_DIR

__all__ = ["TINY_EDIT_DIR", "TINY_EDIT_PLUS_DIR", "TINY_IMAGE_DIR", "ensure_tiny_models"]


def ensure_tiny_models() -> None:
    """Builds whatever `make models` would build and is missing or stale."""
    from services.tinymodels.builder import build_all

    build_all(MODELS_DIR)
