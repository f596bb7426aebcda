"""The model servers' Prometheus metrics, labelled by server (`qwen_image`, `qwen_edit`).

The `imagemesh_modelserver_*` trio is what routing and autoscaling read: how many jobs wait, how
full each pipeline call is, and how many images were delivered (its rate is images per second).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

QUEUE_DEPTH = Gauge(
    "imagemesh_modelserver_queue_depth",
    "Jobs waiting for the pipeline (not those in the running call)",
    ["server"],
)
BATCH_IMAGES = Histogram(
    "imagemesh_modelserver_batch_images",
    "Images per pipeline call (a batch of compatible jobs, or one job alone)",
    ["server"],
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32),
)
IMAGES = Counter(
    "imagemesh_modelserver_images",
    "Images generated and delivered to a caller (rate: images per second)",
    ["server"],
)


class BusyClock(Collector):
    """`imagemesh_modelserver_busy_seconds_total{server}`: seconds a pipeline call was running,
    the running call counted up to the scrape (so its rate, the busy fraction, is smooth even
    while one 50-step call runs for a minute); autoscaling reads it."""

    def __init__(self) -> None:
        self._done: dict[str, float] = {}
        self._since: dict[str, float] = {}

    def start(self, server: str) -> None:
        self._done.setdefault(server, 0.0)
        self._since[server] = time.monotonic()

    def stop(self, server: str) -> None:
        started = self._since.pop(server, None)
        if started is not None:
            self._done[server] += time.monotonic() - started

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "imagemesh_modelserver_busy_seconds",
            "Seconds the pipeline was running a call (rate: busy fraction, 0..1)",
            labels=["server"],
        )
        now = time.monotonic()
        for server, done in list(self._done.items()):
            started = self._since.get(server)
            family.add_metric([server], done + (now - started if started is not None else 0.0))
        yield family


BUSY = BusyClock()
REGISTRY.register(BUSY)

# Older names, kept for the dashboards that read them.
WAITING = Gauge("imagemesh_model_queue_waiting", "Jobs waiting for the pipeline", ["queue"])
STEPS = Counter("imagemesh_model_steps", "Denoising steps run", ["queue"])
JOBS = Counter("imagemesh_model_jobs", "Jobs by outcome", ["queue", "outcome"])
