"""`python -m services.qwen_image`: the Qwen-Image server (settings: QWEN_IMAGE_* variables)."""

from services.modelserver.entry import main

if __name__ == "__main__":
    main("services.qwen_image.service")
