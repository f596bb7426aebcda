"""The model servers' Prometheus metrics, labelled by server (`qwen_image`, `qwen_edit`).

The `imagemesh_modelserver_*` trio is what routing and autoscaling read: how many jobs wait, how
full each pipeline call is, and how many images were delivered (its rate is images per second).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
# Older names, kept for the dashboards that read them.
WAITING = Gauge("imagemesh_model_queue_waiting", "Jobs waiting for the pipeline", ["queue"])
STEPS = Counter("imagemesh_model_steps", "Denoising steps run", ["queue"])
JOBS = Counter("imagemesh_model_jobs", "Jobs by outcome", ["queue", "outcome"])
