"""Inpainting with Edit-Plus and several input images: diffusers 0.42.1 has no Edit-Plus inpaint
pipeline, so the Edit-Plus call itself is masked, the way diffusers' inpaint pipelines do it.

The call starts from noise we draw (one generator per image, as every call), and after each
step the latents outside the mask are replaced by images[0]'s own latents noised to the next
step's sigma (flow matching: (1 - sigma) x0 + sigma noise), so at the last step (sigma 0) the
kept area is exactly images[0] encoded: as with `QwenImageEditInpaintPipeline`, the area outside
the mask is images[0]'s VAE round trip. The masked area is redrawn from noise (strength 1); the
other input images condition the whole picture as usual.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image


class LatentMask:
    """One call's blend: images[0]'s packed latents at the output size, the starting noise, and
    the mask on the packed latent grid (1 = redraw)."""

    def __init__(
        self,
        pipe: Any,
        image: Image.Image,
        mask: Image.Image,
        width: int,
        height: int,
        generators: list[torch.Generator],
    ) -> None:
        device, dtype = pipe._execution_device, pipe.transformer.dtype
        pixels = pipe.image_processor.preprocess(image, height=height, width=width)
        with torch.no_grad():
            encoded = pipe._encode_vae_image(pixels.unsqueeze(2).to(device, dtype), None)
        channels, rows, cols = encoded.shape[1], encoded.shape[3], encoded.shape[4]
        self.x0 = pipe._pack_latents(encoded, 1, channels, rows, cols)
        noise = torch.cat(
            [
                randn_tensor((1, 1, channels, rows, cols), generator=g, device=device, dtype=dtype)
                for g in generators
            ]
        )
        self.noise = pipe._pack_latents(noise, len(generators), channels, rows, cols)
        # The mask at the latent grid (nearest), binary as diffusers' inpaint pipelines make it.
        small = mask.resize((cols, rows), Image.Resampling.NEAREST)
        grid = torch.from_numpy((np.asarray(small) >= 128).astype(np.float32))
        grid = grid.to(device, dtype)[None, None].repeat(1, channels, 1, 1)
        self.mask = pipe._pack_latents(grid, 1, channels, rows, cols)
        self._scheduler = pipe.scheduler

    def blend(self, latents: torch.Tensor, step_index: int) -> torch.Tensor:
        """After step `step_index` (0-based): the kept area put back at the next sigma."""
        sigma = self._scheduler.sigmas[step_index + 1].to(latents.device, latents.dtype)
        kept = (1 - sigma) * self.x0 + sigma * self.noise
        return (1 - self.mask) * kept + self.mask * latents
