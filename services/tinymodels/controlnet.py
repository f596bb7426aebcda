"""Tiny ControlNets for the tiny Qwen-Image pipeline: `QwenImageControlNetModel` of the real class,
built offline with fixed seeds.

`python -m services.tinymodels.controlnet --out models [--force]` (what `make setup` runs) writes
one model folder per entry of `CONTROLNETS` with `save_pretrained` (`config.json` and
`diffusion_pytorch_model.safetensors`), which `QwenImageControlNetModel.from_pretrained` loads as
it loads `InstantX/Qwen-Image-ControlNet-Union`:

- `qwen-image-controlnet-tiny` and `qwen-image-controlnet-depth-tiny`: two control ControlNets
  (another seed each, as two control types would be), the transformer's sizes
  (`components.transformer`) so their block samples add to its blocks;
- `qwen-image-controlnet-inpainting-tiny`: an inpainting ControlNet (`extra_condition_channels`
  4, the packed mask channel beside the masked image's latents), as
  `InstantX/Qwen-Image-ControlNet-Inpainting` is, for `QwenImageControlNetInpaintPipeline`.

A freshly built ControlNet's output projections are zero (`zero_module`), so it would change
nothing; here they are random too, sized so a control image visibly moves the tiny picture
without driving it to NaN. Idempotent like the pipelines (`stamp.py`).
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path
from typing import Any

from services.tinymodels import MODELS_DIR, components, stamp

log = logging.getLogger("imagemesh.tinymodels")

STAMP_CLASS = "QwenImageControlNetModel"
# folder: (seed, extra_condition_channels)
CONTROLNETS = {
    "qwen-image-controlnet-tiny": (31, 0),
    "qwen-image-controlnet-depth-tiny": (37, 0),
    "qwen-image-controlnet-inpainting-tiny": (41, 4),
}
# The spread of the re-drawn output projections, against the base weights' 1 / sqrt(in).
SPREAD = 1.0
# The control picture's projection: wider, so that which picture is sent shows in the result (the
# tiny VAE's latents of two pictures differ little).
EMBED_SPREAD = 8.0


def model(seed: int, extra_condition_channels: int) -> Any:
    """One tiny ControlNet of the tiny transformer's sizes, its zeroed projections re-drawn."""
    import torch
    from diffusers import QwenImageControlNetModel

    torch.manual_seed(seed)
    net: Any = QwenImageControlNetModel(
        patch_size=2,
        in_channels=64,
        out_channels=16,
        num_layers=2,
        attention_head_dim=components.HEAD_DIM,
        num_attention_heads=2,
        joint_attention_dim=components.TEXT_HIDDEN,
        axes_dims_rope=(8, 12, 12),
        extra_condition_channels=extra_condition_channels,
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        spreads = [(block, SPREAD) for block in net.controlnet_blocks]
        for linear, spread in [*spreads, (net.controlnet_x_embedder, EMBED_SPREAD)]:
            fan_in = linear.weight.shape[1]
            linear.weight.copy_(
                torch.randn(linear.weight.shape, generator=generator) * spread / fan_in**0.5
            )
            linear.bias.zero_()
    return net


def build_controlnets(out: Path, force: bool = False) -> list[Path]:
    """Writes each tiny ControlNet under `out` (left alone when current); returns the folders."""
    folders = []
    for name, (seed, extra) in CONTROLNETS.items():
        folder = out / name
        folders.append(folder)
        if not force and stamp.is_current(folder, STAMP_CLASS):
            log.info("%s: up to date", folder)
            continue
        partial = out / f".{name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        model(seed, extra).save_pretrained(partial)
        stamp.write(partial, STAMP_CLASS)
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
        log.info("%s: built", folder)
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m services.tinymodels.controlnet", description=__doc__
    )
    parser.add_argument("--out", type=Path, default=MODELS_DIR, help="folder to build into")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for folder in build_controlnets(out, force=args.force):
        print(folder)


if __name__ == "__main__":
    main()
