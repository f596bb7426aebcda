"""`python -m services.qwen_edit`: the Qwen-Image-Edit server (QWEN_IMAGE_EDIT_* settings)."""

import sys

from pydantic import ValidationError

from services.common.server import run
from services.qwen_edit.service import serve
from services.qwen_edit.settings import QwenEditSettings


def main() -> None:
    try:
        settings = QwenEditSettings()
    except ValidationError as exc:
        # A bad variable is a message to the operator, not a traceback.
        sys.exit(f"qwen_edit: bad settings (QWEN_IMAGE_EDIT_* variables):\n{exc}")
    run(lambda: serve(settings))


if __name__ == "__main__":
    main()
