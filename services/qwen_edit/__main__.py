"""`python -m services.qwen_edit`: the Qwen-Image-Edit server (QWEN_IMAGE_EDIT_* settings)."""

from services.modelserver.entry import main

if __name__ == "__main__":
    main("services.qwen_edit.service")
