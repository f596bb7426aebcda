"""Loads a Qwen diffusers pipeline from a folder or a hub id, once, onto the best device.

`load_pipeline("models/qwen-image-tiny")` and `load_pipeline("Qwen/Qwen-Image")` take the same
path: `DiffusionPipeline.from_pretrained(location, dtype=...)`, bfloat16 on CUDA and float32 on
CPU. The pipeline class comes from the checkpoint's `model_index.json` (`_class_name`) unless the
caller names one. Checkpoints with a `processor/` (the edit ones, Qwen-Image 2.1) get it loaded
with the image-only Qwen2-VL / Qwen3-VL processor their index names (no torchvision needed) and
passed in explicitly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common import tracing

log = logging.getLogger("imagemesh.loader")


class PipelineLoadError(RuntimeError):
    """The pipeline at `location` could not be loaded; the message names the location."""


@dataclass
class LoadedPipeline:
    pipe: Any  # a diffusers DiffusionPipeline
    location: str
    class_name: str
    device: str
    dtype: Any  # torch.dtype
    seconds: float


def choose_device(device: str | None = None) -> tuple[str, Any]:
    """`(device, dtype)`: the device asked for, else CUDA when present; bf16 on CUDA, fp32 else."""
    import torch

    name = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if name.startswith("cuda") else torch.float32
    return name, dtype


def _is_local(location: str) -> bool:
    # A hub id is "owner/name": anything that exists, or looks like a path, is a folder.
    return (
        Path(location).exists() or location.startswith(("/", ".", "~")) or location.count("/") != 1
    )


def read_model_index(location: str) -> dict[str, Any]:
    from diffusers import DiffusionPipeline

    from services.modelserver.modular import read_modular_index

    local = _is_local(location)
    if local and not (Path(location).expanduser() / "model_index.json").is_file():
        modular = read_modular_index(location, local=True)
        if modular is not None:
            return modular
        raise PipelineLoadError(
            f"cannot load pipeline from {location}: no model_index.json (or "
            "modular_model_index.json) there "
            "(build the tiny default with `make models`, or point the LOCATION setting "
            "at a diffusers pipeline folder or a hub id such as Qwen/Qwen-Image)"
        )
    try:
        return dict(DiffusionPipeline.load_config(location))
    except Exception as exc:
        modular = None if local else read_modular_index(location, local=False)
        if modular is not None:
            return modular
        raise PipelineLoadError(f"cannot load pipeline from {location}: {exc}") from exc


def load_pipeline(
    location: str | Path,
    *,
    pipeline_class: str | None = None,
    allowed_classes: Collection[str] | None = None,
    device: str | None = None,
) -> LoadedPipeline:
    """Loads the pipeline at `location` (folder or hub id) and moves it to the device.

    Args:
        location: a diffusers pipeline folder or a hub id (`Qwen/Qwen-Image`).
        pipeline_class: a diffusers class name that overrides `model_index.json`'s `_class_name`.
        allowed_classes: class names this server can run; anything else is a load error.
        device: `"cuda"`, `"cuda:1"`, `"cpu"`...; default CUDA when available, else CPU.

    Raises:
        PipelineLoadError: bad path, unknown class, corrupt or missing weights.
    """
    import diffusers

    from services.modelserver.modular import load_modular

    location = str(Path(location).expanduser()) if _is_local(str(location)) else str(location)
    started = time.perf_counter()
    index = read_model_index(location)
    class_name = pipeline_class or str(index.get("_class_name", ""))
    if allowed_classes is not None and class_name not in allowed_classes:
        raise PipelineLoadError(
            f"cannot load pipeline from {location}: it is a {class_name or 'pipeline of no class'}"
            f", this server runs {', '.join(sorted(allowed_classes))}"
        )
    cls = getattr(diffusers, class_name, None)
    if cls is None:
        raise PipelineLoadError(f"cannot load pipeline from {location}: unknown class {class_name}")
    device_name, dtype = choose_device(device)
    extra: dict[str, Any] = {}
    try:
        if index.get("_modular"):
            pipe = load_modular(
                location,
                index,
                dtype,
                device_name,
                lambda: _load_processor(location, str(index["processor"][1])),
            )
        else:
            if "processor" in index:
                extra["processor"] = _load_processor(location, str(index["processor"][-1]))
            pipe = cls.from_pretrained(location, dtype=dtype, **extra)
            pipe.to(device_name)
    except Exception as exc:
        raise PipelineLoadError(f"cannot load pipeline from {location}: {exc}") from exc
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    tracing.time_phases(pipe)  # encode prompt / decode spans, only when tracing is on
    seconds = time.perf_counter() - started
    log.info(
        "loaded %s from %s on %s (%s) in %.1f s", class_name, location, device_name, dtype, seconds
    )
    return LoadedPipeline(pipe, location, class_name, device_name, dtype, seconds)


def _load_processor(location: str, class_name: str) -> Any:
    from services.modelserver.processor import IMAGE_ONLY_PROCESSORS, ImageOnlyQwen2VLProcessor

    # Qwen-Image 2.1 names Qwen3VLProcessor; the 1.x edit checkpoints Qwen2VLProcessor.
    cls = IMAGE_ONLY_PROCESSORS.get(class_name, ImageOnlyQwen2VLProcessor)
    if _is_local(location):
        return cls.from_pretrained(str(Path(location) / "processor"))
    return cls.from_pretrained(location, subfolder="processor")
