"""The stamp file that marks a tiny pipeline folder as complete and current.

Kept free of torch imports, so `make setup` on an up-to-date checkout answers in a blink.
"""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version
from pathlib import Path

# Bump when the recipe changes in a way the sources and library versions do not capture.
RECIPE_VERSION = 2  # 2: the VAE's posterior is nearly deterministic
STAMP_NAME = ".imagemesh-tiny.json"


def recipe(pipeline_class: str) -> dict[str, object]:
    """What the stamp records: a folder built from the same recipe is not rebuilt."""
    files = sorted(Path(__file__).parent.glob("*.py"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()
    return {
        "recipe_version": RECIPE_VERSION,
        "pipeline_class": pipeline_class,
        "source_sha256": digest,
        **{lib: version(lib) for lib in ("torch", "transformers", "diffusers", "tokenizers")},
    }


def is_current(folder: Path, pipeline_class: str) -> bool:
    try:
        return bool(json.loads((folder / STAMP_NAME).read_text()) == recipe(pipeline_class))
    except (OSError, ValueError):
        return False


def write(folder: Path, pipeline_class: str) -> None:
    (folder / STAMP_NAME).write_text(json.dumps(recipe(pipeline_class), indent=2, sort_keys=True))
