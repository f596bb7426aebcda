"""`python -m services.providers`: the providers gRPC service (settings from PROVIDERS_* env)."""

from services.common.logs import configure_logging
from services.common.server import run
from services.providers.server import serve
from services.providers.settings import ProvidersSettings


def main() -> None:
    settings = ProvidersSettings()
    configure_logging(settings.log_level)
    run(lambda: serve(settings))


if __name__ == "__main__":
    main()
