"""`python -m services.gateway`: the gateway under uvicorn, on GATEWAY_HOST:GATEWAY_PORT."""

from __future__ import annotations

import uvicorn

from services.common.logs import configure_logging
from services.gateway.app import build_app
from services.gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    configure_logging(settings.log_level)
    uvicorn.run(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        # Our own access line carries the request id; uvicorn's would not.
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()
