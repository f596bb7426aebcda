"""Tiny LoRA adapters for the tiny pipelines' transformer, built offline with fixed seeds.

`build_loras(out)` writes `out/loras/tiny-a.safetensors` and `out/loras/tiny-b.safetensors`:
rank-4 LoRA weights on the image-stream attention projections (`to_q`, `to_k`, `to_v`,
`to_out.0`) of every transformer block, in the diffusers/peft layout (`transformer.<module>.
lora_A.weight` / `lora_B.weight`) that `load_lora_weights` of the Qwen-Image pipelines reads.
The weights are random, sized so an adapter visibly changes the tiny pipeline's picture without
driving it to NaN; the three tiny pipelines share the transformer's shapes, so the same files fit
each. The folder is the model servers' `<SERVER>_LORA_DIR` in tests and `make run`.

Idempotent like the pipelines (`stamp.py`): a folder whose stamp matches is left alone, and a
build goes to a temporary folder renamed into place when complete.

    python -m services.tinymodels.lora --out models      (what `make setup` runs)
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path
from typing import cast

import torch

from services.tinymodels import MODELS_DIR, components, stamp

log = logging.getLogger("imagemesh.tinymodels")

LORA_FOLDER = "loras"
ADAPTERS = {"tiny-a": 7, "tiny-b": 11}  # name: seed
RANK = 4
SPREAD = 3.0
TARGETS = ("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0")
STAMP_CLASS = "tiny LoRA adapters"


def state_dict(seed: int) -> dict[str, torch.Tensor]:
    """One adapter's weights: `lora_B @ lora_A` adds a rank-4 change to each target."""
    generator = torch.Generator().manual_seed(seed)
    weights: dict[str, torch.Tensor] = {}
    transformer = cast(torch.nn.Module, components.transformer())  # diffusers is untyped
    for name, module in transformer.named_modules():
        if not isinstance(module, torch.nn.Linear) or not name.endswith(TARGETS):
            continue
        # The product's entries spread three times as wide as the base weights' (1 / sqrt(in)):
        # enough to move the tiny picture by a few levels in 255, far from NaN.
        down = torch.randn(RANK, module.in_features, generator=generator) / module.in_features**0.5
        up = torch.randn(module.out_features, RANK, generator=generator) * SPREAD / RANK**0.5
        weights[f"transformer.{name}.lora_A.weight"] = down.contiguous()
        weights[f"transformer.{name}.lora_B.weight"] = up.contiguous()
    return weights


def build_loras(out: Path, force: bool = False) -> Path:
    """Writes the tiny adapters into `out/loras` (left alone when current); returns the folder."""
    from safetensors.torch import save_file

    folder = out / LORA_FOLDER
    if not force and stamp.is_current(folder, STAMP_CLASS):
        log.info("%s: up to date", folder)
        return folder
    partial = out / f".{LORA_FOLDER}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name, seed in ADAPTERS.items():
        save_file(state_dict(seed), str(partial / f"{name}.safetensors"))
    stamp.write(partial, STAMP_CLASS)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    log.info("%s: built %d tiny LoRA adapters", folder, len(ADAPTERS))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.tinymodels.lora", description=__doc__)
    parser.add_argument("--out", type=Path, default=MODELS_DIR, help="folder to build into")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(build_loras(args.out, force=args.force))


if __name__ == "__main__":
    main()
