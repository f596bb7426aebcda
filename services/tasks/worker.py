"""Runs queued tasks: claim one from the database, run it under a lease, store what happened.

A `TaskWorker` has `concurrency` slots; each slot claims the oldest queued task, runs the
`runner` (services/tasks/runner.py) on it while a heartbeat renews the lease, then records the result or the
failure. The work itself (a gRPC call to a model server or the providers service, the upload of
the images) is the runner's; the worker owns only the queue's rules:

- a task canceled through the API stops at once when it runs in this process (its asyncio task is
  canceled, which cancels its gRPC call), and at its next heartbeat when it runs in another replica;
- a worker that dies stops renewing its lease: `recover_expired`, run by every worker, requeues the
  task once and fails it with a reason the second time;
- on shutdown, running tasks get `grace` seconds to finish, then go back to the queue unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import grpc
from prometheus_client import Counter, Gauge, Histogram

from services.common import requestid, tracing
from services.common.errors import ServiceError
from services.tasks.records import TRACE_KEY, TaskOutput, TaskRecord
from services.tasks.store import TaskStore

log = logging.getLogger("imagemesh.tasks")

_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
FINISHED = Counter(
    "imagemesh_tasks_finished",
    "Task runs that ended here, by model and outcome",
    ["model", "outcome"],
)
RUN_SECONDS = Histogram(
    "imagemesh_task_run_seconds", "Time a task ran, by model", ["model"], buckets=_BUCKETS
)
QUEUE_SECONDS = Histogram(
    "imagemesh_task_queue_seconds",
    "Time from create to a worker's claim",
    ["model"],
    buckets=_BUCKETS,
)
RUNNING = Gauge("imagemesh_tasks_running", "Tasks this replica is running")

Runner = Callable[[TaskRecord], Coroutine[Any, Any, TaskOutput]]
Discard = Callable[[Sequence[str]], Awaitable[object]]

# DashScope's task error codes, by the gRPC status a backend answered.
CODES: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidParameter",
    grpc.StatusCode.OUT_OF_RANGE: "InvalidParameter",
    grpc.StatusCode.NOT_FOUND: "ModelNotFound",
    grpc.StatusCode.PERMISSION_DENIED: "AccessDenied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "Throttling",
    grpc.StatusCode.UNAVAILABLE: "ServiceUnavailable",
    grpc.StatusCode.FAILED_PRECONDITION: "ServiceUnavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "RequestTimeOut",
    grpc.StatusCode.CANCELLED: "Canceled",
}


def failure_of(exc: BaseException) -> tuple[str, str]:
    """(code, message) stored for a task whose runner raised `exc`."""
    if isinstance(exc, ServiceError):
        return CODES.get(exc.code, "InternalError"), exc.message
    if isinstance(exc, grpc.aio.AioRpcError):
        return CODES.get(exc.code(), "InternalError"), exc.details() or exc.code().name
    return "InternalError", "the task failed in the tasks service; its log has the request id"


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class TaskWorker:
    def __init__(
        self,
        store: TaskStore,
        runner: Runner,
        *,
        worker_id: str | None = None,
        concurrency: int = 4,
        lease_seconds: float = 30.0,
        max_attempts: int = 2,
        retention_seconds: float = 86400.0,
        poll_seconds: float = 1.0,
        busy_retry_seconds: float = 2.0,
        max_queue_seconds: float = 3600.0,
        discard: Discard | None = None,
        on_finished: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.runner = runner
        self.worker_id = worker_id or default_worker_id()
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.retention_seconds = retention_seconds
        self.poll_seconds = poll_seconds
        self.busy_retry_seconds = busy_retry_seconds
        self.max_queue_seconds = max_queue_seconds
        self.discard = discard
        self.on_finished = on_finished
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._recovery: asyncio.Task[None] | None = None
        self._jobs: dict[str, asyncio.Task[TaskOutput]] = {}
        self._stopping = False

    @property
    def running(self) -> list[str]:
        return list(self._jobs)

    async def start(self) -> None:
        self._stopping = False
        self._loops = [
            asyncio.create_task(self._slot(), name=f"task-slot-{i}")
            for i in range(self.concurrency)
        ]
        self._recovery = asyncio.create_task(self._recover_loop(), name="task-recover")

    def wake(self) -> None:
        """A task was queued here: claim it now rather than at the next poll."""
        self._wake.set()

    def cancel_local(self, task_id: str) -> bool:
        """Stops the run of `task_id` if this worker is running it."""
        job = self._jobs.get(task_id)
        if job is None or job.done():
            return False
        job.cancel()
        return True

    async def stop(self, grace: float = 0.0) -> None:
        """Stops claiming; running tasks get `grace` seconds, then return to the queue."""
        self._stopping = True
        self._wake.set()
        jobs = [job for job in self._jobs.values() if not job.done()]
        if jobs and grace > 0:
            await asyncio.wait(jobs, timeout=grace)
        for job in self._jobs.values():
            job.cancel()
        if self._recovery is not None:
            self._recovery.cancel()
        await asyncio.gather(*self._loops, *filter(None, [self._recovery]), return_exceptions=True)
        self._loops, self._recovery = [], None

    async def _slot(self) -> None:
        while not self._stopping:
            try:
                task = await self.store.claim(self.worker_id, self.lease_seconds)
            except Exception:
                log.exception("claiming a task failed; retrying")
                task = None
            if task is None:
                await self._idle()
                continue
            if self._stopping:
                await self.store.release(task.id, self.worker_id)
                return
            try:
                await self.run_claimed(task)
            except Exception:
                # E.g. the database went away while storing the outcome: the lease lapses and
                # the task runs again; this slot goes on.
                log.exception("task %s: recording its outcome failed", task.id)
            # Others may be queued behind it: claim again at once.

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
        self._wake.clear()

    async def _recover_loop(self) -> None:
        while not self._stopping:
            try:
                requeued, failed = await self.store.recover_expired(
                    self.max_attempts, self.retention_seconds
                )
                if requeued or failed:
                    log.warning("lapsed leases: %d tasks requeued, %d failed", requeued, failed)
                    if requeued:
                        self._wake.set()
            except Exception:
                log.exception("recovering lapsed tasks failed; retrying")
            await asyncio.sleep(max(0.05, self.lease_seconds / 3))

    async def _run(self, task: TaskRecord) -> TaskOutput:
        # With tracing on, the run joins the trace of the request that created the task.
        with tracing.continued(
            task.spec.get(TRACE_KEY), "run task", **{"imagemesh.task_id": task.id}
        ):
            return await self.runner(task)

    async def run_claimed(self, task: TaskRecord) -> None:
        """Runs one claimed task to its end and records the outcome."""
        token = requestid.set_request_id(task.request_id or requestid.new_request_id())
        job: asyncio.Task[TaskOutput] = asyncio.create_task(self._run(task), name=f"task-{task.id}")
        self._jobs[task.id] = job
        heartbeat = asyncio.create_task(self._heartbeat(task.id, job))
        if task.started_at is not None:
            QUEUE_SECONDS.labels(task.model).observe(
                max(0.0, (task.started_at - task.created_at).total_seconds())
            )
        RUNNING.inc()
        start = time.perf_counter()
        try:
            log.info("task %s (%s) started, attempt %d", task.id, task.model, task.attempts)
            # asyncio.wait, not await: a cancel of the job must not look like a cancel of us.
            await asyncio.wait([job])
            RUN_SECONDS.labels(task.model).observe(time.perf_counter() - start)
            FINISHED.labels(task.model, await self._record(task, job)).inc()
        except asyncio.CancelledError:
            job.cancel()  # we are torn down: the run must not outlive us (its lease will lapse)
            raise
        finally:
            RUNNING.dec()
            heartbeat.cancel()
            self._jobs.pop(task.id, None)
            requestid.reset_request_id(token)
            if self.on_finished:
                self.on_finished(task.id)

    async def _record(self, task: TaskRecord, job: asyncio.Task[TaskOutput]) -> str:
        """Stores how the run ended; answers the outcome (a metrics label)."""
        if job.cancelled():
            if self._stopping:
                released = await self.store.release(task.id, self.worker_id)
                log.info("task %s returned to the queue on shutdown (%s)", task.id, released)
                return "released"
            log.info("task %s stopped: canceled or its lease was lost", task.id)
            return "canceled"
        exc = job.exception()
        if exc is not None:
            code, message = failure_of(exc)
            if code == "Throttling" and self._may_wait(task):
                # The model server's queue is full or the provider rate-limits us: the task waits
                # in ours instead of failing (queues in front of queues smooth bursts).
                await self.store.defer(task.id, self.worker_id, self.busy_retry_seconds)
                log.info("task %s deferred %.1f s: %s", task.id, self.busy_retry_seconds, message)
                return "deferred"
            if code == "InternalError":
                log.error("task %s failed", task.id, exc_info=exc)
            else:
                log.info("task %s failed: %s %s", task.id, code, message)
            await self.store.fail(task.id, self.worker_id, code, message, self.retention_seconds)
            return "failed"
        output = job.result()
        if await self.store.complete(task.id, self.worker_id, output, self.retention_seconds):
            log.info("task %s succeeded with %d images", task.id, len(output.images))
            return "succeeded"
        # Canceled (or taken over) while the last step ran: nobody will read these images.
        log.info("task %s finished after it was canceled; deleting its images", task.id)
        if self.discard and output.keys:
            try:
                await self.discard(output.keys)
            except Exception:
                log.exception("deleting the images of canceled task %s failed", task.id)
        return "canceled"

    def _may_wait(self, task: TaskRecord) -> bool:
        waited = (self.store.clock() - task.created_at).total_seconds()
        return waited + self.busy_retry_seconds < self.max_queue_seconds

    async def _heartbeat(self, task_id: str, job: asyncio.Task[TaskOutput]) -> None:
        interval = max(0.05, self.lease_seconds / 3)
        while not job.done():
            await asyncio.sleep(interval)
            try:
                held = await self.store.heartbeat(task_id, self.worker_id, self.lease_seconds)
            except Exception:
                # The database is unreachable: keep running; the lease covers short outages.
                log.warning("renewing the lease of task %s failed", task_id, exc_info=True)
                continue
            if not held:
                job.cancel()
                return
