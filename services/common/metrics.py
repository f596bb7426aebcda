"""Prometheus metrics per RPC: a counter by status code, a latency histogram, in-flight calls."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

REQUESTS = Counter(
    "imagemesh_grpc_requests",
    "gRPC calls served, by method and status code",
    ["method", "code"],
)
LATENCY = Histogram(
    "imagemesh_grpc_request_seconds",
    "Time to serve a gRPC call, by method",
    ["method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
IN_FLIGHT = Gauge("imagemesh_grpc_in_flight", "gRPC calls being served, by method", ["method"])


def start_metrics_server(listen: str) -> int | None:
    """Serves /metrics on `host:port`; port 0 picks a free one, an empty string disables it."""
    if not listen:
        return None
    host, _, port = listen.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host or "127.0.0.1")
    return int(server.server_port)
