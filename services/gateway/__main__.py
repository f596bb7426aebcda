"""`python -m services.gateway`: the gateway under uvicorn, on GATEWAY_HOST:GATEWAY_PORT."""

from __future__ import annotations

import signal
import sys
from types import FrameType

import uvicorn
from pydantic import ValidationError

from services.common.logs import configure_logging
from services.common.memory import return_large_buffers
from services.gateway.app import build_app
from services.gateway.catalog import CatalogError
from services.gateway.settings import GatewaySettings
from services.gateway.slowclients import protocol


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
    return_large_buffers()
    # uvicorn drains on SIGTERM/SIGINT, then restores the handlers it found and raises the signal
    # again: with the default handlers the process would die of it (exit 143) after a clean
    # drain. These make that final signal a normal exit 0, as the gRPC services do.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        # Our own access line carries the request id; uvicorn's would not.
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=30,
        # Slow clients: a timer on each request head, and a cap on connections and requests.
        http=protocol(settings.header_timeout_seconds),
        limit_concurrency=settings.limit_concurrency or None,
    )


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


if __name__ == "__main__":
    main()
