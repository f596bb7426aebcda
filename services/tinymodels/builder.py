"""Builds the three tiny pipelines and saves them exactly as the real checkpoints are laid out.

`build_all(out)` writes `qwen-image-tiny`, `qwen-image-edit-tiny` and `qwen-image-edit-plus-tiny`
under `out`. Each folder is a normal diffusers pipeline folder (`model_index.json`, one subfolder
per component) that `DiffusionPipeline.from_pretrained` loads like `Qwen/Qwen-Image`.

Idempotent: a folder whose stamp file matches the current build recipe is left alone. A folder is
built under a temporary name and renamed into place only once complete, so an interrupted build
never leaves a half-written pipeline that looks finished.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import diffusers

from services.modelserver.processor import ImageOnlyQwen2VLProcessor
from services.tinymodels import components, stamp
from services.tinymodels.tokenizer import train_tokenizer
from services.tinymodels.variants import VARIANTS, Variant

log = logging.getLogger("imagemesh.tinymodels")


def _assemble(variant: Variant) -> Any:
    tokenizer = train_tokenizer()
    parts: dict[str, object] = {
        "scheduler": components.scheduler(),
        "vae": components.vae(),
        "text_encoder": components.text_encoder(tokenizer),
        "tokenizer": tokenizer,
        "transformer": components.transformer(),
    }
    if variant.has_processor:
        parts["processor"] = ImageOnlyQwen2VLProcessor(
            image_processor=components.image_processor(), tokenizer=tokenizer
        )
    pipeline_class = getattr(diffusers, variant.pipeline_class)
    return pipeline_class(**parts)


def _save_processor_like_the_real_checkpoint(pipe: Any, folder: Path) -> None:
    """Writes `processor/` and its `model_index.json` entry as `Qwen/Qwen-Image-Edit` has them.

    diffusers would record our subclass (`services....ImageOnlyQwen2VLProcessor`) as the component
    class; the real checkpoints say `transformers.Qwen2VLProcessor` and keep the image processor
    in `preprocessor_config.json` beside the tokenizer files. Mirroring that layout means the
    loader that reads the tiny folders is the one that reads real weights.
    """
    processor_dir = folder / "processor"
    shutil.rmtree(processor_dir, ignore_errors=True)
    pipe.processor.image_processor.save_pretrained(processor_dir)
    pipe.processor.tokenizer.save_pretrained(processor_dir)
    for name in ("preprocessor_config.json", "tokenizer_config.json"):
        path = processor_dir / name
        config = json.loads(path.read_text())
        config["processor_class"] = "Qwen2VLProcessor"
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    index_path = folder / "model_index.json"
    index = json.loads(index_path.read_text())
    index["processor"] = ["transformers", "Qwen2VLProcessor"]
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def build(out: Path, variant: Variant, force: bool = False) -> bool:
    """Builds one variant into `out/<variant.folder>`; returns False when it was already built."""
    folder = out / variant.folder
    if not force and stamp.is_current(folder, variant.pipeline_class):
        log.info("%s: up to date", folder)
        return False
    started = time.perf_counter()
    partial = out / f".{variant.folder}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    pipe = _assemble(variant)
    pipe.save_pretrained(partial)
    if variant.has_processor:
        _save_processor_like_the_real_checkpoint(pipe, partial)
    stamp.write(partial, variant.pipeline_class)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    log.info("%s: built in %.1f s", folder, time.perf_counter() - started)
    return True


def build_all(out: Path, force: bool = False) -> list[Path]:
    """Builds every variant that is missing or stale; returns the folders (built or not)."""
    out.mkdir(parents=True, exist_ok=True)
    for variant in VARIANTS:
        build(out, variant, force=force)
    return [out / variant.folder for variant in VARIANTS]
