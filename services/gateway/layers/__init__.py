"""POST /v1/images/layers: an image split into RGBA layers by a Qwen-Image-Layered model."""
