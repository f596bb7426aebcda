"""`python -m services.qwen_image`: the Qwen-Image server (settings: QWEN_IMAGE_* variables)."""

import sys

from pydantic import ValidationError

from services.common.server import run
from services.qwen_image.service import serve
from services.qwen_image.settings import QwenImageSettings


def main() -> None:
    try:
        settings = QwenImageSettings()
    except ValidationError as exc:
        # A bad variable is a message to the operator, not a traceback.
        sys.exit(f"qwen_image: bad settings (QWEN_IMAGE_* variables):\n{exc}")
    run(lambda: serve(settings))


if __name__ == "__main__":
    main()
