"""What a model server says of its load: the `Load` answer and the trailer on every answer.

The numbers are the job queue's (`JobQueue.load()`: images waiting, images in the running call,
denoising steps left image by image; the queue `imagemesh_modelserver_queue_depth` and
`_batch_images` describe), and once a call has been timed, its pace (`pace.py`: ms per step of
one image, ms for the rest of a call) and the milliseconds it predicts until the queue is
drained. The gateway adds them up per replica and sends each call where it will be done soonest
(services/gateway/routing).
"""

from __future__ import annotations

from collections.abc import Callable

from imagemesh.v1 import common_pb2

from services.common import loadreport
from services.modelserver.jobs import JobQueue

Metadata = tuple[tuple[str, str], ...]


def trailer(queue: JobQueue, not_started: bool = False) -> Metadata:
    """`imagemesh-load: queued=Q,running=R,steps=S[,ms=M,step_ms=X,call_ms=Y]` (and the
    not-started mark when it applies)."""
    return loadreport.trailer(
        *queue.load(), not_started=not_started, ms=queue.remaining_ms(), pace=queue.pace.pace
    )


def reporter(queue: JobQueue, serving: Callable[[], bool]) -> Callable[[], common_pb2.LoadResponse]:
    """The `Load` answer of a server whose health is `serving()`."""

    def report() -> common_pb2.LoadResponse:
        queued, running, steps = queue.load()
        pace, ms = queue.pace.pace, queue.remaining_ms()
        return common_pb2.LoadResponse(
            queued_images=queued,
            running_images=running,
            remaining_steps=steps,
            serving=serving(),
            queued_jobs=queue.waiting,
            max_queue=queue.max_waiting,
            step_ms=pace.step_ms if pace else 0.0,
            call_ms=pace.call_ms if pace else 0.0,
            remaining_ms=ms or 0,
        )

    return report
