"""One pipeline, many callers: a bounded queue in front of a single worker thread, which runs
compatible waiting jobs together as one pipeline call.

A model server owns one pipeline, and a diffusion pipeline is neither thread-safe nor faster when
two calls share the device, so calls run one at a time in a dedicated thread, off the event loop.
But one call can carry several jobs: jobs whose `Batchable` keys match are taken together, in
arrival order, up to `max_batch_images` images (`batching.py` says which and how; 1 turns it
off), optionally after waiting `batch_wait_ms` for more to arrive. Callers wait in a FIFO queue
of bounded length that counts waiting jobs only; a caller that would make it longer gets
RESOURCE_EXHAUSTED at once ("queue full: N waiting"), never a hang.

A caller that goes away (client cancel, deadline passed: gRPC cancels the handler task) is dropped
from the queue; if its job is running, its step function raises `JobCancelled` at the next
denoising step: alone, the call stops, so the device is not spent on answers nobody reads; in a
batch, only its images are dropped. Both are logged with the caller's request id.

A streaming job gets its own progress events and may publish previews: at the steps its
`PreviewPlan` names, the step callback hands `Job.step` a function that decodes its intermediate
latents; it is called only when someone reads the stream (a plain call never pays for the decode).

    queue = JobQueue("qwen_image", max_waiting=8, max_batch_images=4)
    job = queue.submit(Batchable(item, call=pipeline_call, key=shape), total_steps=30)
    images = await queue.result(job)          # or: async for event in queue.events(job)

A plain `work(step)` callable is submitted the same way and always runs alone.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, overload

from services.common import requestid, tracing
from services.modelserver import batching
from services.modelserver.batching import Batchable, BatchStepFn, JobCancelled, Outcome
from services.modelserver.metrics import (
    BATCH_IMAGES,
    BUSY,
    IMAGES,
    JOBS,
    QUEUE_DEPTH,
    STEPS,
    WAITING,
)
from services.modelserver.pace import PaceMeter
from services.modelserver.refusals import QueueFull

log = logging.getLogger("imagemesh.jobs")

T = TypeVar("T")
__all__ = ["Job", "JobCancelled", "JobQueue", "Preview", "Progress", "StepFn", "StepHook"]


@dataclass(frozen=True)
class Progress:
    step: int  # denoising steps done (0 while queued or starting)
    total_steps: int
    queue_position: int  # calls ahead of this one; 0 = running now


@dataclass(frozen=True)
class Preview:
    """Images decoded from the latents after `step`, the `index`-th (0-based) of its job."""

    step: int
    index: int
    images: list[Any]  # PIL images


class StepFn(Protocol):
    """Called after each step (1-based); `preview`, when given, decodes that step's latents."""

    def __call__(self, index: int, preview: Callable[[], Preview] | None = None) -> None: ...


StepHook = Callable[["Job[Any]", int], None]
_DONE = object()


def _alone(works: list[Callable[[StepFn], Any]], step: BatchStepFn) -> list[Any]:
    """The call of a plain `work(step)` job: one job, its own step function."""

    def own_step(index: int, preview: Callable[[], Preview] | None = None) -> None:
        step(index, [preview])

    return [works[0](own_step)]


class Job(Generic[T]):
    """One caller's job: its part of a pipeline call, its progress, its result."""

    def __init__(
        self, queue: JobQueue, work: Batchable[Any], total_steps: int, streaming: bool
    ) -> None:
        self._queue = queue
        self.work = work
        self.context = contextvars.copy_context()  # the request id follows the job
        self.request_id = requestid.get_request_id()
        self.total_steps = total_steps
        self.steps_done = 0
        self.cancelled = threading.Event()
        self.future: asyncio.Future[T] = queue.loop.create_future()
        self.updates: asyncio.Queue[Any] | None = asyncio.Queue() if streaming else None
        self._last: Progress | None = None
        # Traces only (services/common/tracing.py): when it was queued, when each step ended.
        self.submitted_ns = tracing.now_ns() if tracing.active() else 0
        self.step_ns: list[int] | None = [] if tracing.active() else None
        # Routing only (pace.py): when the call's first and latest steps ended.
        self.first_step: tuple[int, float] | None = None
        self.last_step: tuple[int, float] | None = None

    @property
    def images(self) -> int:
        return self.work.images

    def post(self, progress: Progress) -> None:
        """Queues a progress event for a streaming caller (event loop thread only); an event
        equal to the previous one (same position, same step) is not repeated."""
        if self.updates is not None and progress != self._last:
            self._last = progress
            self.updates.put_nowait(progress)

    def step(self, index: int, preview: Callable[[], Preview] | None = None) -> None:
        """Called by the pipeline after step `index` (1-based), in the worker thread; decodes
        and publishes the step's preview when given one and someone reads the stream."""
        self.steps_done = index
        self.last_step = (index, time.monotonic())
        if self.first_step is None:
            self.first_step = self.last_step
        if self.step_ns is not None:
            self.step_ns.append(tracing.now_ns())
        STEPS.labels(self._queue.name).inc()
        if self._queue.step_hook is not None:
            self._queue.step_hook(self, index)
        if self.cancelled.is_set():
            raise JobCancelled()
        if self.updates is not None:
            loop = self._queue.loop
            loop.call_soon_threadsafe(self.post, Progress(index, self.total_steps, 0))
            if preview is not None:
                # Same loop queue as the progress event above: the preview follows its step.
                loop.call_soon_threadsafe(self.updates.put_nowait, preview())

    def log(self, message: str, *args: Any) -> None:
        """Logs with the submitting call's request id (the worker task belongs to no single
        call, and the job's context may be in use by the pipeline thread)."""
        log.info(message, *args, extra={"request_id": self.request_id})


class JobQueue:
    """FIFO of at most `max_waiting` jobs in front of one worker thread, which takes up to
    `max_batch_images` images of compatible jobs per pipeline call."""

    def __init__(
        self,
        name: str,
        max_waiting: int,
        step_hook: StepHook | None = None,
        max_batch_images: int = 1,
        batch_wait_ms: float = 0.0,
    ) -> None:
        self.name = name
        self.max_waiting = max_waiting
        self.step_hook = step_hook  # tests observe (or hold) steps through it
        self.max_batch_images = max(1, max_batch_images)
        self.batch_wait = batch_wait_ms / 1000
        self._waiting: deque[Job[Any]] = deque()
        self._running: list[Job[Any]] = []
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-pipeline")
        self._phases: list[tuple[str, int, int]] = []  # the last call's, traces only
        self._worker: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop
        self.pace = PaceMeter()  # how fast calls run here, for routing
        self._call_started = 0.0

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> list[Job[Any]]:
        """The jobs of the call under way (empty when idle)."""
        return list(self._running)

    def load(self) -> tuple[int, int, int]:
        """(images waiting, images in the running call, denoising steps left image by image:
        all of the waiting jobs', the rest of the running call's): what routing reads."""
        waiting = sum(job.work.images for job in self._waiting)
        running = sum(job.work.images for job in self._running)
        # A running image counts at least one step: its decode is still to come.
        steps = sum(job.work.images * job.total_steps for job in self._waiting) + sum(
            job.work.images * max(1, job.total_steps - job.steps_done) for job in self._running
        )
        return waiting, running, steps

    def remaining_ms(self) -> int | None:
        """Predicted milliseconds until the queue is drained (None before any call was
        measured): what routing weighs replicas of different speeds by."""
        elapsed = time.monotonic() - self._call_started if self._running else 0.0
        return self.pace.remaining_ms(list(self._waiting), self._running, elapsed)

    @overload
    def submit(
        self, work: Batchable[Any], total_steps: int, streaming: bool = False
    ) -> Job[Any]: ...

    @overload
    def submit(
        self, work: Callable[[StepFn], T], total_steps: int, streaming: bool = False
    ) -> Job[T]: ...

    def submit(
        self,
        work: Batchable[Any] | Callable[[StepFn], T],
        total_steps: int,
        streaming: bool = False,
    ) -> Job[Any]:
        """Queues a job, or raises `ResourceExhausted` when `max_waiting` jobs already wait."""
        self.loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            self._worker = self.loop.create_task(self._work(), name=f"{self.name}-worker")
        busy = bool(self._running) or bool(self._waiting)
        if busy and len(self._waiting) >= self.max_waiting:
            JOBS.labels(self.name, "rejected").inc()
            raise QueueFull(f"queue full: {len(self._waiting)} waiting; retry later (with backoff)")
        if not isinstance(work, Batchable):
            work = Batchable(item=work, call=_alone)
        job: Job[Any] = Job(self, work, total_steps, streaming)
        job.post(Progress(0, total_steps, self._position(len(self._waiting))))
        self._waiting.append(job)
        self._depth()
        self._wake.set()
        return job

    def _position(self, index: int) -> int:
        return index + (1 if self._running else 0)

    def _depth(self) -> None:
        WAITING.labels(self.name).set(len(self._waiting))
        QUEUE_DEPTH.labels(self.name).set(len(self._waiting))

    def cancel(self, job: Job[Any]) -> None:
        """The caller is gone: drop the job if it waits, stop it at its next step if it runs."""
        if job.future.done() and not job.future.cancelled():
            return
        job.cancelled.set()
        if job in self._waiting:
            self._waiting.remove(job)
            self._depth()
            JOBS.labels(self.name, "dropped").inc()
            job.log("dropped a waiting job: its caller is gone")
            self._announce_positions()
        elif job in self._running:
            job.log("stopping the running job at its next step: its caller is gone")

    async def result(self, job: Job[T]) -> T:
        """Waits for the job's result; cancelling the waiter cancels the job."""
        try:
            return await asyncio.shield(job.future)
        except asyncio.CancelledError:
            self.cancel(job)
            raise

    async def events(self, job: Job[T]) -> AsyncIterator[Progress | Preview | T]:
        """Yields the job's progress events and previews, then its result (or raises its
        error)."""
        assert job.updates is not None, "submit(..., streaming=True) for events()"
        try:
            while True:
                event = await job.updates.get()
                if event is _DONE:
                    break
                yield event
            yield await asyncio.shield(job.future)
        finally:
            if not job.future.done():
                self.cancel(job)

    def _announce_positions(self) -> None:
        for index, waiting in enumerate(self._waiting):
            waiting.post(Progress(0, waiting.total_steps, self._position(index)))

    async def _gather(self) -> None:
        """With a batch window: waits up to `batch_wait_ms` for compatible jobs to fill the
        oldest job's call (returns at once when it is full, or cannot grow)."""
        if self.batch_wait <= 0 or self.max_batch_images <= 1:
            return
        deadline = self.loop.time() + self.batch_wait
        while self._waiting and self._waiting[0].work.key is not None:
            images = sum(
                job.work.images for job in batching.plan(self._waiting, self.max_batch_images)
            )
            remaining = deadline - self.loop.time()
            if images >= self.max_batch_images or remaining <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                return

    def _observe_call(self, images: int) -> None:
        BATCH_IMAGES.labels(self.name).observe(images)

    def _execute(self, batch: list[Job[Any]]) -> list[Outcome]:
        """The pipeline call, in the worker thread (its phases timed when tracing is on)."""
        if not tracing.active():
            return batching.execute(batch, self._observe_call)
        tracing.start_phases()
        try:
            return batching.execute(batch, self._observe_call)
        finally:
            self._phases = tracing.take_phases()

    def _trace(self, batch: Sequence[Job[Any]], started_ns: int, ended_ns: int) -> None:
        """Each job's spans, in its own trace: the queue wait, then the call it shared with the
        batch and that call's phases (encode prompt, each denoise step, decode)."""
        phases, self._phases = self._phases, []
        encoded = max((end for name, _, end in phases if name == "encode prompt"), default=0)
        for job in batch:
            tracing.record("queue wait", job.context, job.submitted_ns, started_ns)
            call = tracing.record(
                "pipeline call",
                job.context,
                started_ns,
                ended_ns,
                **{"imagemesh.batch_jobs": len(batch), "imagemesh.steps": job.total_steps},
            )
            for name, start, end in phases:
                tracing.record(name, call, start, end)
            previous = encoded or started_ns
            for index, end in enumerate(job.step_ns or [], start=1):
                tracing.record("denoise step", call, previous, end, **{"imagemesh.step": index})
                previous = end

    async def _work(self) -> None:
        while True:
            while not self._waiting:
                self._wake.clear()
                await self._wake.wait()
            await self._gather()
            batch = batching.take(self._waiting, self.max_batch_images)
            self._depth()
            if not batch:
                continue
            self._running = batch
            for job in batch:
                job.post(Progress(0, job.total_steps, 0))
            self._announce_positions()
            BUSY.start(self.name)
            started_ns = tracing.now_ns()
            self._call_started = started = time.monotonic()
            try:
                outcomes = await asyncio.shield(
                    self.loop.run_in_executor(self._executor, self._execute, batch)
                )
            except asyncio.CancelledError:
                for job in batch:
                    job.cancelled.set()  # the worker itself is stopping: so do the jobs
                raise
            except Exception as exc:  # noqa: BLE001 - a fault of the queue itself fails its jobs
                outcomes = [Outcome(error=exc)] * len(batch)
            finally:
                BUSY.stop(self.name)
                self._running = []
            if tracing.active():
                self._trace(batch, started_ns, tracing.now_ns())
            if all(o.error is None and not o.cancelled for o in outcomes):
                self.pace.observe(
                    time.monotonic() - started, sum(j.images for j in batch), batch[0]
                )
            self._finish(batch, outcomes)

    def _finish(self, batch: Sequence[Job[Any]], outcomes: Sequence[Outcome]) -> None:
        for job, outcome in zip(batch, outcomes, strict=True):
            if outcome.cancelled:
                JOBS.labels(self.name, "cancelled").inc()
                job.log("job stopped after %d of %d steps", job.steps_done, job.total_steps)
                _settle(job, exc=asyncio.CancelledError())
            elif outcome.error is not None:
                JOBS.labels(self.name, "failed").inc()
                _settle(job, exc=outcome.error)
            else:
                JOBS.labels(self.name, "done").inc()
                IMAGES.labels(self.name).inc(job.work.images)
                _settle(job, result=outcome.result)

    async def close(self) -> None:
        """Cancels every job and stops the worker (the running call stops at its next step)."""
        for job in list(self._waiting):
            self.cancel(job)
        for job in self._running:
            job.cancelled.set()
        if self._worker is not None:
            self._worker.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _settle(job: Job[Any], result: Any = None, exc: BaseException | None = None) -> None:
    if not job.future.done():
        if exc is None:
            job.future.set_result(result)
        elif isinstance(exc, asyncio.CancelledError):
            job.future.cancel()
        else:
            job.future.set_exception(exc)
    if job.updates is not None:
        job.updates.put_nowait(_DONE)
