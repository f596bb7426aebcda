"""The tiny Qwen-Image 2.1 pipeline: `QwenImage21Pipeline` of the real classes, built offline.

`python -m services.tinymodels.qwen_image_21 --out models [--force]` writes
`models/qwen-image-2.1-tiny` (what `make setup` runs after the 1.x pipelines), a diffusers folder
that `DiffusionPipeline.from_pretrained` loads like `Qwen/Qwen-Image-2.1`, and
`models/qwen-image-2.1-turbo-tiny`: the same components as a `QwenImage21TurboModularPipeline`
folder (`modular_model_index.json`, Turbo's few-step `sample_sigmas`), as 2.1 Turbo ships. It shares nothing
with the 1.x pipelines but the tokenizer recipe, as the real model shares nothing with 1.x:

- text encoder: Qwen3-VL (`Qwen3VLForConditionalGeneration`), text sizes inside `text_config`,
  interleaved mrope sections summing to half the head dim, a vision tower of patch 16 whose
  output size is the text hidden size (the transformer's `context_in_dim`);
- processor: `Qwen3VLProcessor` with the PIL image processor and a chat template; the pipeline
  drops as many leading tokens as the template gives the system message, so no fixed prefix
  length to match (unlike 1.x, see `tokenizer.py`);
- transformer: `QwenImage21Transformer2DModel`, patch 1 over the VAE's 64 latent channels, rope
  axes summing to the head dim;
- VAE: `AutoencoderKLQwenImage21` with z_dim 64 (the default 64-entry latents mean/std) and four
  downsamples (scale factor 16: sizes must be multiples of 32, as with the real model);
- scheduler: the 1.x FlowMatch settings; `sample_sigmas` left unset, so `num_inference_steps`
  decides the steps (a checkpoint that sets them fixes the steps: `services/qwen_image`).

Idempotent like `builder.py`: a folder whose stamp matches this recipe is left alone, and a build
goes to a temporary name first.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from services.tinymodels import stamp
from services.tinymodels.tokenizer import ENDOFTEXT, special_token_ids, train_tokenizer

log = logging.getLogger("imagemesh.tinymodels")

FOLDER = "qwen-image-2.1-tiny"
PIPELINE_CLASS = "QwenImage21Pipeline"
TURBO_FOLDER = "qwen-image-2.1-turbo-tiny"
TURBO_CLASS = "QwenImage21TurboModularPipeline"
# Turbo's shipped sigma grid, its few-step default (the real one has 8; two keep tests quick).
TURBO_SIGMAS = [1.0, 0.5]
# Bump when this recipe changes in a way the sources and library versions do not capture.
RECIPE_VERSION = 1
SEED = 20261203
TEXT_HIDDEN = 32
HEAD_DIM = 32

# Qwen3-VL's chat template, cut to what the pipeline uses (text and image parts per turn).
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _text_encoder(tokenizer: Any) -> Any:
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    ids = special_token_ids(tokenizer)
    config = Qwen3VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": TEXT_HIDDEN,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
            # The three mrope sections (time, height, width) sum to head_dim / 2.
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5000000.0,
                "mrope_section": [2, 3, 3],
                "mrope_interleaved": True,
            },
            "max_position_embeddings": 32768,
            "pad_token_id": ids[ENDOFTEXT],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": TEXT_HIDDEN,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "num_position_embeddings": 64,
            "deepstack_visual_indexes": [0],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(SEED)
    return Qwen3VLForConditionalGeneration(config)


def _processor(tokenizer: Any) -> Any:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    from services.modelserver.processor import ImageOnlyQwen3VLProcessor

    # Qwen3-VL's image processor: Qwen2-VL's with patch 16 and mean/std 0.5 (no torchvision).
    # The transformer lays 4 VAE latents over each image token, so the processor must never
    # shrink the condition image the pipeline sized (about 1 megapixel, say 1184x896): its pixel
    # limit sits far above that.
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=16,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        size={"shortest_edge": 32 * 32, "longest_edge": 4096 * 4096},
    )
    return ImageOnlyQwen3VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE
    )


def _transformer() -> Any:
    import torch
    from diffusers import QwenImage21Transformer2DModel

    torch.manual_seed(SEED + 1)
    return QwenImage21Transformer2DModel(
        patch_size=1,
        in_channels=64,
        out_channels=64,
        num_layers=2,
        attention_head_dim=HEAD_DIM,
        num_attention_heads=2,
        context_in_dim=TEXT_HIDDEN,
        mlp_ratio=2,
        axes_dims_rope=(8, 12, 12),
    )


def _vae() -> Any:
    import torch
    from diffusers import AutoencoderKLQwenImage21

    torch.manual_seed(SEED + 2)
    # base 8 (the real model: 96 / decoder 144): full-resolution convolutions dominate CPU time.
    return AutoencoderKLQwenImage21(
        base_dim=8,
        decoder_base_dim=8,
        z_dim=64,
        dim_mult=[1, 2, 4, 4, 4],
        num_res_blocks=1,
        temperal_downsample=[False, True, True, True],
    )


def assemble() -> Any:
    """The tiny `QwenImage21Pipeline`, in memory."""
    from diffusers import QwenImage21Pipeline

    from services.tinymodels import components

    tokenizer = train_tokenizer()
    return QwenImage21Pipeline(
        scheduler=components.scheduler(),
        vae=_vae(),
        text_encoder=_text_encoder(tokenizer),
        processor=_processor(tokenizer),
        transformer=_transformer(),
        sample_sigmas=None,
    )


def _save_processor_like_the_real_checkpoint(
    pipe: Any, folder: Path, index_name: str = "model_index.json"
) -> None:
    """`processor/` as a transformers `Qwen3VLProcessor` folder (not our subclass's name), so the
    loader that reads the tiny folder is the one that reads real weights."""
    processor_dir = folder / "processor"
    shutil.rmtree(processor_dir, ignore_errors=True)
    pipe.processor.image_processor.save_pretrained(processor_dir)
    pipe.processor.tokenizer.save_pretrained(processor_dir)
    (processor_dir / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    for name in ("preprocessor_config.json", "tokenizer_config.json"):
        path = processor_dir / name
        config = json.loads(path.read_text())
        config["processor_class"] = "Qwen3VLProcessor"
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if index_name != "model_index.json":
        return  # the modular index is rewritten by its own writer
    index_path = folder / index_name
    index = json.loads(index_path.read_text())
    index["processor"] = ["transformers", "Qwen3VLProcessor"]
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def _stamp_class(pipeline_class: str = PIPELINE_CLASS) -> str:
    # The stamp records the class; the recipe version rides along in it.
    return f"{pipeline_class} (recipe {RECIPE_VERSION})"


def _save_turbo(pipe: Any, folder: Path) -> None:
    """The same components as `QwenImage21TurboModularPipeline` saves them: a
    `modular_model_index.json` (no `model_index.json`), as `Qwen/Qwen-Image-2.1-Turbo` ships.

    Each component's spec points at no repository (`pretrained_model_name_or_path` null), so it
    loads from the folder it sits in, wherever the checkout is; the processor is named as
    transformers' `Qwen3VLProcessor`, and `sample_sigmas` is Turbo's few-step grid.
    """
    from diffusers import QwenImage21TurboAutoBlocks

    blocks: Any = QwenImage21TurboAutoBlocks()  # diffusers' stubs lack `init_pipeline`
    turbo = blocks.init_pipeline()
    turbo.update_components(**{k: v for k, v in pipe.components.items() if v is not None})
    turbo.save_pretrained(str(folder), overwrite_modular_index=True)
    _save_processor_like_the_real_checkpoint(pipe, folder, index_name="modular_model_index.json")
    index_path = folder / "modular_model_index.json"
    index = json.loads(index_path.read_text())
    for value in index.values():
        if isinstance(value, list) and len(value) == 3 and isinstance(value[2], dict):
            value[2]["pretrained_model_name_or_path"] = None
    index["processor"] = [
        "transformers",
        "Qwen3VLProcessor",
        {**index["processor"][2], "type_hint": ["transformers", "Qwen3VLProcessor"]},
    ]
    index["sample_sigmas"] = TURBO_SIGMAS
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def build_turbo(out: Path, force: bool = False) -> bool:
    """Builds `out/qwen-image-2.1-turbo-tiny`; returns False when it was already current."""
    folder = out / TURBO_FOLDER
    if not force and stamp.is_current(folder, _stamp_class(TURBO_CLASS)):
        log.info("%s: up to date", folder)
        return False
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    partial = out / f".{TURBO_FOLDER}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    _save_turbo(assemble(), partial)
    stamp.write(partial, _stamp_class(TURBO_CLASS))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    log.info("%s: built in %.1f s", folder, time.perf_counter() - started)
    return True


def build(out: Path, force: bool = False) -> bool:
    """Builds `out/qwen-image-2.1-tiny`; returns False when it was already current."""
    folder = out / FOLDER
    if not force and stamp.is_current(folder, _stamp_class()):
        log.info("%s: up to date", folder)
        return False
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    partial = out / f".{FOLDER}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    pipe = assemble()
    pipe.save_pretrained(partial)
    _save_processor_like_the_real_checkpoint(pipe, partial)
    stamp.write(partial, _stamp_class())
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    log.info("%s: built in %.1f s", folder, time.perf_counter() - started)
    return True


def main() -> None:
    from services.tinymodels import MODELS_DIR

    parser = argparse.ArgumentParser(
        prog="python -m services.tinymodels.qwen_image_21", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=MODELS_DIR, help="folder to build into")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build(args.out, force=args.force)
    build_turbo(args.out, force=args.force)
    print(args.out / FOLDER)
    print(args.out / TURBO_FOLDER)


if __name__ == "__main__":
    main()
