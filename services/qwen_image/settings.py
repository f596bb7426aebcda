"""Settings of the Qwen-Image server, read from `QWEN_IMAGE_*` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.modelserver.settings import TINY_IMAGE_DIR, ModelServerSettings


class QwenImageSettings(ModelServerSettings):
    model_config = SettingsConfigDict(env_prefix="QWEN_IMAGE_")

    listen: str = "127.0.0.1:50051"
    metrics_listen: str = "127.0.0.1:9151"
    # QWEN_IMAGE_LOCATION (seed 003): a pipeline folder or a hub id such as Qwen/Qwen-Image.
    location: str = str(TINY_IMAGE_DIR)
    # Used when a request leaves width or height at 0 (the OpenAI default size).
    default_width: int = Field(default=1024, ge=16)
    default_height: int = Field(default=1024, ge=16)
    # An input image (img2img, inpainting) or mask over this many pixels is refused before work.
    max_input_pixels: int = Field(default=4096 * 4096, ge=1)
