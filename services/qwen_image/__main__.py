"""`python -m services.qwen_image`: the Qwen-Image server (settings: QWEN_IMAGE_* variables)."""

import os
import sys

# Set before torch loads OpenMP: worker threads that spin while they wait burn the CPU that a busy
# or CPU-limited machine needs for the work itself. Measured on a loaded 2-core machine, 256x256,
# 4 steps: 0.97 s with PASSIVE, 4.75 s with the default (spinning). The operator's value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
