"""Pictures and measures for the inpainting / img2img tests: a test image, masks in OpenAI's
form (transparent = change) and diffusers' (white = change), and the tiny VAE's round trip.

`round_trip` runs the tiny pipeline's own VAE (encode, posterior mode, decode) on an image the
way the Qwen pipelines preprocess it, so a test can say how far an untouched area may move:
outside a mask, an inpainted picture is the round trip of the input, nothing more.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def sample_image(width: int, height: int) -> Image.Image:
    """Two gradients and a square: every area of it differs from every other."""
    x = np.zeros((height, width, 3), np.uint8)
    x[:, :, 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    x[:, :, 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    x[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4, 2] = 200
    return Image.fromarray(x)


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def left_half_alpha_mask(width: int, height: int) -> Image.Image:
    """OpenAI's form: RGBA, fully transparent on the left half (change), opaque elsewhere."""
    alpha = np.full((height, width), 255, np.uint8)
    alpha[:, : width // 2] = 0
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[:, :, 3] = alpha
    return Image.fromarray(rgba, "RGBA")


def left_half_grey_mask(width: int, height: int) -> Image.Image:
    """diffusers' form: greyscale, white on the left half (change), black elsewhere."""
    grey = np.zeros((height, width), np.uint8)
    grey[:, : width // 2] = 255
    return Image.fromarray(grey, "L")


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as picture:
        return np.asarray(picture.convert("RGB")).astype(np.float64)


def round_trip(pipeline_dir: Path, image: Image.Image) -> np.ndarray:
    """The image through the pipeline's VAE and back, as RGB floats 0..255."""
    import torch
    from diffusers import AutoencoderKLQwenImage
    from diffusers.image_processor import VaeImageProcessor

    vae = AutoencoderKLQwenImage.from_pretrained(pipeline_dir / "vae")
    processor = VaeImageProcessor(vae_scale_factor=16)
    tensor = processor.preprocess(image, height=image.height, width=image.width).unsqueeze(2)
    with torch.no_grad():
        latents = vae.encode(tensor).latent_dist.mode()
        decoded = vae.decode(latents, return_dict=False)[0][:, :, 0]
    picture = processor.postprocess(decoded, output_type="pil")[0]
    return np.asarray(picture.convert("RGB")).astype(np.float64)


def mean_moved(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())
