"""How fast this server's pipeline runs, as its last calls ran: for the gateway's routing.

Two numbers, each an exponentially weighted mean over the calls that ran to the end: the time of
one denoising step per image (`step_ms`), and the rest of a call (`call_ms`: prompt encoding,
decoding, turning images into bytes: what a call costs whatever its steps). A call's step time is
read from the times its step callbacks came (from the first to the last), so a call with fewer
than two step events (one step, or a pipeline without a step callback) teaches nothing.

From them `remaining_ms` predicts how long the queue takes to drain: every waiting job as its own
call, and the running call's predicted time less what it already ran (never less than its steps
left). Once the running call has stepped twice, its own step time replaces the mean for it: the
mean mixes sizes (a 256x256 step costs many 64x64 ones), and a long call of another size than
the last ones must not look nearly done. Replicas of different speeds (a GPU and a CPU, a
replica sharing its core) are then weighed by the time they need, not by the steps they hold.
Not modelled: sizes for the waiting jobs (a step is a step, as when work was counted in steps)
and batching (a batched call's step time is shared among its images).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from services.common.loadreport import Pace

WEIGHT = 0.3  # of the newest call in the means: a few calls follow a change of speed


class Timed(Protocol):
    """What the prediction reads of a job (`jobs.Job`)."""

    total_steps: int
    steps_done: int
    first_step: tuple[int, float] | None  # (step index, monotonic seconds) of the call's first
    last_step: tuple[int, float] | None

    @property
    def images(self) -> int: ...


class PaceMeter:
    def __init__(self) -> None:
        self.pace: Pace | None = None  # None until a call has been measured

    def observe(self, seconds: float, images: int, head: Timed) -> None:
        """A call of `images` images that ran to the end in `seconds`; `head` is one of its jobs
        (every member steps together)."""
        call_step = _step_seconds(head)  # one step of the whole call
        if call_step is None or images <= 0:
            return
        step_ms = call_step * 1000 / images
        call_ms = max(0.0, (seconds - call_step * head.total_steps) * 1000)
        old = self.pace
        self.pace = (
            Pace(step_ms, call_ms)
            if old is None
            else Pace(
                old.step_ms + WEIGHT * (step_ms - old.step_ms),
                old.call_ms + WEIGHT * (call_ms - old.call_ms),
            )
        )

    def remaining_ms(
        self, waiting: Sequence[Timed], running: Sequence[Timed], elapsed: float
    ) -> int | None:
        """Milliseconds until the waiting jobs and the running call are done (None before any
        call was measured); `elapsed`: seconds the running call has run."""
        pace = self.pace
        if pace is None:
            return None
        total = sum(pace.cost(job.images * job.total_steps) for job in waiting)
        if running:
            images = sum(job.images for job in running)
            steps = max(job.total_steps for job in running)
            left = max(0, steps - max(job.steps_done for job in running))
            own = _step_seconds(running[0])
            if own is not None:
                pace = Pace(own * 1000 / images, pace.call_ms)
            whole = pace.cost(images * steps)
            total += max(pace.cost(images * left, calls=0), whole - elapsed * 1000)
        return round(total)


def _step_seconds(job: Timed) -> float | None:
    """Seconds of one step of the call `job` is in, from its step events (None before two)."""
    if job.first_step is None or job.last_step is None:
        return None
    (first, started), (last, ended) = job.first_step, job.last_step
    return (ended - started) / (last - first) if last > first else None
