"""Settings every gRPC server has. Each service subclasses this with its own env prefix."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

MIB = 1024 * 1024


class ServerSettings(BaseSettings):
    """Fields read from `<PREFIX>LISTEN`, `<PREFIX>METRICS_LISTEN`, ... (prefix per service)."""

    listen: str = "127.0.0.1:0"
    # Prometheus /metrics; empty disables it.
    metrics_listen: str = ""
    # Image payloads pass gRPC's 4 MB default easily (n=4 at 1328x1328 is tens of MB of PNG).
    max_message_bytes: int = Field(default=64 * MIB, ge=4 * MIB)
    # On SIGTERM: NOT_SERVING at once, in-flight calls get this long to finish.
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    log_level: str = "INFO"
