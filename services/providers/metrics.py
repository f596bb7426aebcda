"""The providers service's Prometheus metrics: each call by provider, model and outcome.

The gRPC interceptor counts calls by method only; the dashboard (deploy/components/monitoring)
shows latency and errors per provider and per model, which only the servicer knows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from prometheus_client import Histogram

from services.common.errors import ServiceError

CALLS = Histogram(
    "imagemesh_provider_call_seconds",
    "Time of a providers call (upstream requests, retries and polls included), by outcome code",
    ["provider", "model", "call", "code"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)


@contextmanager
def observed(provider: str, model: str, call: str) -> Iterator[None]:
    started = time.perf_counter()
    code = grpc.StatusCode.OK.name
    try:
        yield
    except ServiceError as exc:
        code = exc.code.name
        raise
    except BaseException:
        code = grpc.StatusCode.UNKNOWN.name
        raise
    finally:
        CALLS.labels(provider, model, call, code).observe(time.perf_counter() - started)
