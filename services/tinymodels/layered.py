"""The tiny Qwen-Image-Layered pipeline: `QwenImageLayeredPipeline` of the real classes, offline.

`python -m services.tinymodels.layered --out models [--force]` writes
`models/qwen-image-layered-tiny` (what `make setup` runs), a diffusers folder that
`DiffusionPipeline.from_pretrained` loads like `Qwen/Qwen-Image-Layered`. It splits an image into
RGBA layers; what differs from the 1.x tiny pipelines (`components.py`) is what the real
checkpoint changes:

- VAE: `AutoencoderKLQwenImage` with `input_channels=4`: it encodes and decodes RGBA (the layers'
  alpha is the fourth channel), otherwise the tiny 1.x VAE's recipe (nearly point posterior,
  identity attention);
- transformer: `QwenImageTransformer2DModel` with `use_additional_t_cond` (the pipeline tells it
  the image is RGB) and `use_layer3d_rope` (one rope position per layer), sizes as 1.x's;
- text encoder, tokenizer, scheduler: 1.x's (the pipeline's prompt template is text to image's,
  whose 34-token prefix the tokenizer is trained to keep); processor: the image-only Qwen2-VL
  processor, saved as `transformers.Qwen2VLProcessor` like the edit checkpoints (the pipeline
  captions an image sent without a prompt with it).

Idempotent like `builder.py`: a folder whose stamp matches this recipe is left alone, and a build
goes to a temporary name first.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from services.tinymodels import stamp

log = logging.getLogger("imagemesh.tinymodels")

FOLDER = "qwen-image-layered-tiny"
PIPELINE_CLASS = "QwenImageLayeredPipeline"
# Bump when this recipe changes in a way the sources and library versions do not capture.
RECIPE_VERSION = 1
SEED = 20261204


def _vae() -> Any:
    import torch
    from diffusers import AutoencoderKLQwenImage
    from diffusers.models.autoencoders.autoencoder_kl_qwenimage import QwenImageAttentionBlock

    torch.manual_seed(SEED + 2)
    model: Any = AutoencoderKLQwenImage(
        base_dim=8,
        z_dim=16,
        dim_mult=[1, 2, 4, 4],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        input_channels=4,
    )
    # As components.vae: the sample is the posterior's mean, and attention is the identity.
    with torch.no_grad():
        model.quant_conv.weight[16:].zero_()
        model.quant_conv.bias[16:].fill_(-30.0)
        for block in model.modules():
            if isinstance(block, QwenImageAttentionBlock):
                block.proj.weight.zero_()
                block.proj.bias.zero_()
    return model


def _transformer() -> Any:
    import torch
    from diffusers import QwenImageTransformer2DModel

    from services.tinymodels import components

    torch.manual_seed(SEED + 1)
    return QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=64,
        out_channels=16,
        num_layers=2,
        attention_head_dim=components.HEAD_DIM,
        num_attention_heads=2,
        joint_attention_dim=components.TEXT_HIDDEN,
        guidance_embeds=False,
        axes_dims_rope=(8, 12, 12),
        use_additional_t_cond=True,
        use_layer3d_rope=True,
    )


def assemble() -> Any:
    """The tiny `QwenImageLayeredPipeline`, in memory."""
    from diffusers import QwenImageLayeredPipeline

    from services.modelserver.processor import ImageOnlyQwen2VLProcessor
    from services.tinymodels import components
    from services.tinymodels.tokenizer import train_tokenizer

    tokenizer = train_tokenizer()
    return QwenImageLayeredPipeline(
        scheduler=components.scheduler(),
        vae=_vae(),
        text_encoder=components.text_encoder(tokenizer),
        tokenizer=tokenizer,
        processor=ImageOnlyQwen2VLProcessor(
            image_processor=components.image_processor(), tokenizer=tokenizer
        ),
        transformer=_transformer(),
    )


def _stamp_class() -> str:
    return f"{PIPELINE_CLASS} (recipe {RECIPE_VERSION})"


def build(out: Path, force: bool = False) -> bool:
    """Builds `out/qwen-image-layered-tiny`; returns False when it was already current."""
    folder = out / FOLDER
    if not force and stamp.is_current(folder, _stamp_class()):
        log.info("%s: up to date", folder)
        return False
    # Imported only when there is work: torch and diffusers take seconds to import.
    from services.tinymodels.builder import _save_processor_like_the_real_checkpoint

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
        prog="python -m services.tinymodels.layered", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=MODELS_DIR, help="folder to build into")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build(args.out, force=args.force)
    print(args.out / FOLDER)


if __name__ == "__main__":
    main()
