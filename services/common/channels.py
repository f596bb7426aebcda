"""Client channels to mesh services, with the same message limits as the servers."""

from __future__ import annotations

import grpc

from services.common import tracing
from services.common.settings import MIB


def channel_options(max_message_bytes: int = 64 * MIB) -> list[tuple[str, int]]:
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        # Reconnect quickly after a backend restarts, so the mesh recovers on its own.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]


def insecure_channel(target: str, max_message_bytes: int = 64 * MIB) -> grpc.aio.Channel:
    # round_robin: a `dns:///name:port` target that resolves to several pods (a headless Service,
    # deploy/) spreads calls over all of them; the default pick_first pins them to one.
    options = [*channel_options(max_message_bytes), ("grpc.lb_policy_name", "round_robin")]
    # With tracing on, each call sends the trace context on (services/common/tracing.py).
    interceptors = tracing.client_interceptors() or None
    return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
