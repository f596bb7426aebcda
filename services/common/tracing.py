"""OpenTelemetry traces across the mesh, installed only when an OTLP endpoint is configured.

With `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, each process
exports its spans over OTLP/HTTP (protobuf) with `service.name` = `OTEL_SERVICE_NAME` or the
service it runs (`python -m services.tasks` -> `tasks`): the gRPC servers and every mesh channel
carry the W3C trace context (OpenTelemetry's gRPC interceptors), the gateway's FastAPI app is
instrumented, and each server span has the request id as `imagemesh.request_id`. The other
`OTEL_*` variables (sampler, batch delay, headers) work as the SDK documents them.

Without it nothing is installed: no interceptor, no middleware, and no OpenTelemetry module is
imported; every function here returns at its first line (the hot path pays one bool check).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
REQUEST_ID = "imagemesh.request_id"
_lock = threading.Lock()
_installed = False
_phases = threading.local()


def enabled() -> bool:
    return any(os.environ.get(name) for name in ENDPOINT_VARIABLES)


def active() -> bool:
    """Installed in this process (setup ran with an endpoint configured)."""
    return _installed


def service_name() -> str:
    """OTEL_SERVICE_NAME, else the service package `python -m` runs, else `imagemesh`."""
    if os.environ.get("OTEL_SERVICE_NAME"):
        return os.environ["OTEL_SERVICE_NAME"]
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    parts = (spec.name if spec else "").split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "services" else "imagemesh"


def setup() -> bool:
    """Installs the tracer provider and OTLP exporter once; False (and nothing done) when no
    endpoint is configured."""
    global _installed
    if not enabled():
        return False
    with _lock:
        if _installed:
            return True
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": service_name()}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        # Spans still in the batch are sent when the process exits (SIGTERM drains, then exits).
        atexit.register(provider.shutdown)
        _installed = True
        return True


def server_interceptors() -> list[Any]:
    """For `grpc.aio.server(interceptors=...)`: the server span of each call (outermost)."""
    if not setup():
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor()]


def client_interceptors() -> list[Any]:
    """For `grpc.aio.insecure_channel(interceptors=...)`: a client span, the context sent on."""
    if not setup():
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors())


def instrument_app(app: Any) -> None:
    """The gateway's FastAPI app: a server span per request (probes and /metrics left out)."""
    if not setup():
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")


def set_request_id(request_id: str) -> None:
    if not _installed:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attribute(REQUEST_ID, request_id)


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    """A child span of the current one around a block (nothing when tracing is off)."""
    if not _installed:
        yield
        return
    from opentelemetry import trace

    with trace.get_tracer("imagemesh").start_as_current_span(name, attributes=attributes):
        yield


def carrier() -> dict[str, str]:
    """The current trace context as W3C headers (`traceparent`), to continue it elsewhere
    later; {} when tracing is off."""
    if not _installed:
        return {}
    from opentelemetry.propagate import inject

    headers: dict[str, str] = {}
    inject(headers)
    return headers


@contextlib.contextmanager
def continued(headers: Any, name: str, **attributes: Any) -> Iterator[None]:
    """A span `name` continuing the trace `headers` (from `carrier()`) carried; a new trace when
    there are none; nothing when tracing is off."""
    if not _installed:
        yield
        return
    from opentelemetry import trace
    from opentelemetry.propagate import extract

    parent = extract(headers) if isinstance(headers, dict) else None
    tracer = trace.get_tracer("imagemesh")
    with tracer.start_as_current_span(name, context=parent, attributes=attributes):
        yield


def now_ns() -> int:
    return time.time_ns()


def record(name: str, context: Any, start_ns: int, end_ns: int, **attributes: Any) -> Any:
    """A span with given times under `context` (a contextvars.Context captured earlier, e.g. a
    queued job's); answers a context for children of it. None when tracing is off."""
    if not _installed or context is None:
        return None
    from opentelemetry import trace

    parent = context.run(_current_otel_context) if hasattr(context, "run") else context
    started = trace.get_tracer("imagemesh").start_span(
        name, context=parent, start_time=start_ns, attributes=attributes
    )
    started.end(end_time=end_ns)
    return trace.set_span_in_context(started)


def _current_otel_context() -> Any:
    from opentelemetry import context

    return context.get_current()


# Pipeline phases: the pipeline's methods are timed in the worker thread while a call runs; the
# job queue turns the log into spans under each job's own trace once the call is over (a
# batched call serves several traces).


def time_phases(pipeline: Any) -> None:
    """Times `encode_prompt` and the VAE's `decode` of a diffusers pipeline (tracing on only)."""
    if not enabled():
        return
    if hasattr(pipeline, "encode_prompt"):
        pipeline.encode_prompt = _timed("encode prompt", pipeline.encode_prompt)
    vae = getattr(pipeline, "vae", None)
    if vae is not None and hasattr(vae, "decode"):
        vae.decode = _timed("decode", vae.decode)


def _timed(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.time_ns()
        try:
            return call(*args, **kwargs)
        finally:
            log = getattr(_phases, "log", None)
            if log is not None:
                log.append((name, started, time.time_ns()))

    return timed


def start_phases() -> None:
    _phases.log = []


def take_phases() -> list[tuple[str, int, int]]:
    log: list[tuple[str, int, int]] = getattr(_phases, "log", None) or []
    _phases.log = None
    return log
