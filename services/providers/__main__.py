"""`python -m services.providers`: the providers gRPC service (settings from PROVIDERS_* env)."""

import sys

from pydantic import ValidationError

from services.common.logs import configure_logging
from services.common.server import run
from services.providers.server import serve
from services.providers.settings import ProvidersSettings


def main() -> None:
    try:
        settings = ProvidersSettings()
    except ValidationError as exc:
        print(f"providers: invalid settings (PROVIDERS_* environment): {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level)
    run(lambda: serve(settings))


if __name__ == "__main__":
    main()
