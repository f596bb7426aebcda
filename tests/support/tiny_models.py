"""The tiny pipelines the model-server tests run on, built on first use (idempotent, seconds),
and the tiny LoRA adapters (`services/tinymodels/lora.py`)."""

from __future__ import annotations

import shutil
from pathlib import Path

from services.tinymodels import MODELS_DIR, TINY_EDIT_DIR, TINY_EDIT_PLUS_DIR, TINY_IMAGE_DIR

__all__ = [
    "BROKEN_LORA",
    "TINY_EDIT_DIR",
    "TINY_EDIT_PLUS_DIR",
    "TINY_IMAGE_DIR",
    "ensure_tiny_loras",
    "ensure_tiny_models",
    "lora_folder",
]

BROKEN_LORA = "broken"  # an adapter whose file is not safetensors, in `lora_folder`s


def ensure_tiny_models() -> None:
    """Builds whatever `make models` would build and is missing or stale."""
    from services.tinymodels.builder import build_all

    build_all(MODELS_DIR)


def ensure_tiny_loras() -> Path:
    """Builds the tiny LoRA adapters if missing or stale; returns their folder."""
    from services.tinymodels.lora import build_loras

    return build_loras(MODELS_DIR)


def lora_folder(into: Path) -> Path:
    """A LORA_DIR of its own for a test: the tiny adapters, copied, and `BROKEN_LORA`."""
    into.mkdir(parents=True, exist_ok=True)
    for path in ensure_tiny_loras().glob("*.safetensors"):
        shutil.copyfile(path, into / path.name)
    (into / f"{BROKEN_LORA}.safetensors").write_bytes(b"not a safetensors file\n" * 4)
    return into
