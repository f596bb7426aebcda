"""`python -m services.gateway`: the gateway under uvicorn, on GATEWAY_HOST:GATEWAY_PORT."""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from services.common.logs import configure_logging
from services.gateway.app import build_app
from services.gateway.catalog import CatalogError
from services.gateway.settings import GatewaySettings


def main() -> None:
    try:
        settings = GatewaySettings()
        app = build_app(settings)
    except ValidationError as exc:
        # A bad variable is a message to the operator, not a traceback.
        sys.exit(f"gateway: bad settings (GATEWAY_* variables):\n{exc}")
    except CatalogError as exc:
        sys.exit(f"gateway: {exc}")
    configure_logging(settings.log_level)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        # Our own access line carries the request id; uvicorn's would not.
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()
