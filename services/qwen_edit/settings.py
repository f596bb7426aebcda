"""Settings of the Qwen-Image-Edit server, read from `QWEN_IMAGE_EDIT_*` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.modelserver.settings import TINY_EDIT_DIR, ModelServerSettings


class QwenEditSettings(ModelServerSettings):
    model_config = SettingsConfigDict(env_prefix="QWEN_IMAGE_EDIT_")

    listen: str = "127.0.0.1:50052"
    metrics_listen: str = "127.0.0.1:9152"
    # QWEN_IMAGE_EDIT_LOCATION (seed 003): a pipeline folder or a hub id such as
    # Qwen/Qwen-Image-Edit or Qwen/Qwen-Image-Edit-2509 (an Edit-Plus checkpoint).
    location: str = str(TINY_EDIT_DIR)
    # Input images an Edit-Plus pipeline takes (Qwen-Image-Edit-2509 is tuned for 1 to 3);
    # the plain Edit pipeline takes exactly one.
    max_input_images: int = Field(default=3, ge=1)
    # An input image that decodes to more pixels than this is refused before any work.
    max_input_pixels: int = Field(default=4096 * 4096, ge=1)
    # Layers one request may ask of a Layered checkpoint (QwenImageLayeredPipeline): each adds a
    # frame of latents to every step and one VAE decode (`services/qwen_edit/layered.py`).
    max_layers: int = Field(default=8, ge=1)
