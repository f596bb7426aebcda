"""`python -m services.<server>`: the entry point every model server shares.

This module imports nothing heavy at the top, so the OpenMP setting below is in place before
torch loads: worker threads that spin while they wait burn the CPU that a busy or CPU-limited
machine needs for the work itself. Measured on a loaded 2-core machine, 256x256, 4 steps: 0.97 s
with PASSIVE, 4.75 s with the default (spinning). The operator's value wins.
"""

from __future__ import annotations

import importlib
import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(service_module: str) -> None:
    """Reads the settings of the `ServerKind` named `SERVER` in `service_module` and serves."""
    from pydantic import ValidationError

    from services.common.server import run

    kind = importlib.import_module(service_module).SERVER
    try:
        settings = kind.settings_type()
    except ValidationError as exc:
        # A bad variable is a message to the operator, not a traceback.
        sys.exit(f"{kind.name}: bad settings ({kind.env_prefix}* variables):\n{exc}")
    run(lambda: kind.serve(settings))
