"""What a model server says of its load: the `Load` answer and the trailer on every answer.

The numbers are the job queue's (`JobQueue.load()`: images waiting, images in the running call,
denoising steps left image by image; the queue `imagemesh_modelserver_queue_depth` and
`_batch_images` describe); the gateway adds them up per replica and sends each call where the
least work waits (services/gateway/routing).
"""

from __future__ import annotations

from collections.abc import Callable

from imagemesh.v1 import common_pb2

from services.common import loadreport
from services.modelserver.jobs import JobQueue

Metadata = tuple[tuple[str, str], ...]


def trailer(queue: JobQueue, not_started: bool = False) -> Metadata:
    """`imagemesh-load: queued=Q,running=R,steps=S` (and the not-started mark when it
    applies)."""
    return loadreport.trailer(*queue.load(), not_started=not_started)


def reporter(queue: JobQueue, serving: Callable[[], bool]) -> Callable[[], common_pb2.LoadResponse]:
    """The `Load` answer of a server whose health is `serving()`."""

    def report() -> common_pb2.LoadResponse:
        queued, running, steps = queue.load()
        return common_pb2.LoadResponse(
            queued_images=queued,
            running_images=running,
            remaining_steps=steps,
            serving=serving(),
            queued_jobs=queue.waiting,
            max_queue=queue.max_waiting,
        )

    return report
