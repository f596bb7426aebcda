"""Checkpoints that diffusers ships only as a modular pipeline (`modular_model_index.json`), such
as Qwen-Image 2.1 Turbo's `QwenImage21TurboModularPipeline`.

`read_modular_index` reads the index (marked `_modular` for the loader); `load_modular` builds the
pipeline with `ModularPipeline.from_pretrained`, loads its components (the processor with the
image-only class the loader picks, as for `model_index.json` checkpoints) and moves it to the
device. A modular pipeline has no step callback: `services/qwen_image/family21.py` says which
features that leaves out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

MODULAR_INDEX = "modular_model_index.json"


def read_modular_index(location: str, local: bool) -> dict[str, Any] | None:
    """The modular index at `location` (a folder, or a hub id), or None when it has none."""
    if local:
        path = Path(location).expanduser() / MODULAR_INDEX
        if not path.is_file():
            return None
        index: dict[str, Any] = json.loads(path.read_text())
    else:
        from huggingface_hub import hf_hub_download

        try:
            index = json.loads(Path(hf_hub_download(location, MODULAR_INDEX)).read_text())
        except Exception:  # noqa: BLE001 - any failure: no modular index; the caller reports its own
            return None
    return {**index, "_modular": True}


def load_modular(
    location: str, index: dict[str, Any], dtype: Any, device: str, processor: Callable[[], Any]
) -> Any:
    """The modular pipeline at `location`, its components loaded, on `device`."""
    from diffusers import ModularPipeline

    pipe = ModularPipeline.from_pretrained(location)
    names = [n for n in pipe.component_names if n != "processor" and n in index]
    pipe.load_components(names=names, dtype=dtype)
    if "processor" in index:
        pipe.update_components(processor=processor())
    pipe.to(device)
    return pipe
