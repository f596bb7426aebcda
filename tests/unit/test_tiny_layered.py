"""The tiny Qwen-Image-Layered folder: the real classes, loaded through the servers' loader, with
what the Layered checkpoint changes (RGBA VAE, layer-3D rope) and the 34-token template prefix."""

from __future__ import annotations

import json

from services.modelserver.loader import load_pipeline
from services.modelserver.settings import MODELS_DIR
from services.tinymodels import layered
from services.tinymodels.tokenizer import template_prefix_length


def test_the_tiny_layered_folder_loads_as_the_real_classes() -> None:
    layered.build(MODELS_DIR)
    folder = MODELS_DIR / layered.FOLDER
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "QwenImageLayeredPipeline"
    assert index["processor"] == ["transformers", "Qwen2VLProcessor"]
    loaded = load_pipeline(folder)
    pipe = loaded.pipe
    assert type(pipe).__name__ == "QwenImageLayeredPipeline"
    assert pipe.vae.config.input_channels == 4
    assert pipe.transformer.config.use_layer3d_rope is True
    assert pipe.transformer.config.use_additional_t_cond is True
    prefix = pipe.prompt_template_encode_start_idx
    assert template_prefix_length(pipe.tokenizer, pipe.prompt_template_encode) == prefix == 34
