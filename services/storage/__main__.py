"""`python -m services.storage`: the storage service (settings: STORAGE_* variables)."""

import sys

from pydantic import ValidationError

from services.common.server import run
from services.storage.service import serve
from services.storage.settings import StorageSettings


def main() -> None:
    try:
        settings = StorageSettings()
    except ValidationError as exc:
        # A bad variable is a message to the operator, not a traceback.
        sys.exit(f"storage: bad settings (STORAGE_* variables):\n{exc}")
    run(lambda: serve(settings))


if __name__ == "__main__":
    main()
