"""The task service: validate and queue, read, cancel, wait; owns the worker and the sweeper.

The gateway gives it a `TaskBackend`: `prepare` validates a request at create time with the
gateway's own catalogue and request validation (an unknown model or a bad parameter is refused
before anything is queued) and `run` does the generation through the gateway's serving layer,
which stores the images in our bucket. Plain class: testable without HTTP.

Tasks belong to the API key that created them (stored as its sha256): another key reads them as
unknown. Tasks created without a key are readable by anyone who has the id (a random UUID).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from services.common.errors import FailedPrecondition, NotFound
from services.gateway.tasks.records import NewTask, Status, TaskOutput, TaskRecord
from services.gateway.tasks.retention import Retention
from services.gateway.tasks.settings import TaskSettings
from services.gateway.tasks.store import TaskStore, owner_of, utcnow
from services.gateway.tasks.worker import Discard, TaskWorker

log = logging.getLogger("imagemesh.gateway.tasks")

# A presigned link this close to its expiry is signed again before it is shown.
LINK_REFRESH_MARGIN_SECONDS = 300


@dataclass(frozen=True)
class TaskRequest:
    """A create request, whichever API it came through."""

    model: str
    parameters: dict[str, Any]
    provider: str = ""
    api: str = "tasks"


@dataclass(frozen=True)
class PreparedTask:
    """What `prepare` makes of a request: the model's public name and the runner's spec."""

    model: str
    spec: dict[str, Any]
    provider: str = ""


class TaskBackend(Protocol):
    async def prepare(self, request: TaskRequest) -> PreparedTask:
        """Validates the request; raises the 404 (unknown model) or 400 (bad parameter)."""
        ...

    async def run(self, task: TaskRecord) -> TaskOutput:
        """Runs the task's spec; the images are in our bucket when it returns."""
        ...


Presign = Callable[[str], Awaitable[tuple[str, int]]]


class TaskService:
    def __init__(
        self,
        settings: TaskSettings,
        store: TaskStore,
        backend: TaskBackend,
        *,
        delete_objects: Discard | None = None,
        presign: Presign | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.backend = backend
        self.presign = presign
        self._finished: dict[str, asyncio.Event] = {}
        self.worker = TaskWorker(
            store,
            backend.run,
            worker_id=worker_id,
            concurrency=settings.task_workers,
            lease_seconds=settings.task_lease_seconds,
            max_attempts=settings.task_max_attempts,
            retention_seconds=settings.task_retention_seconds,
            poll_seconds=settings.task_poll_seconds,
            busy_retry_seconds=settings.task_busy_retry_seconds,
            max_queue_seconds=settings.task_max_queue_seconds,
            discard=delete_objects,
            on_finished=self._notify,
        )
        self.retention = Retention(
            store, delete_objects, interval_seconds=settings.task_retention_sweep_seconds
        )

    @classmethod
    async def open(cls, settings: TaskSettings, backend: TaskBackend, **kwargs: Any) -> TaskService:
        return cls(settings, await TaskStore.open(settings.database_url), backend, **kwargs)

    async def start(self) -> None:
        """Starts running queued tasks (those left from before a restart first, by age)."""
        if self.settings.task_workers > 0:
            await self.worker.start()
        await self.retention.start()

    async def close(self) -> None:
        await self.retention.stop()
        await self.worker.stop(self.settings.task_shutdown_grace_seconds)
        await self.store.close()

    async def create(
        self, request: TaskRequest, api_key: str | None, request_id: str = ""
    ) -> TaskRecord:
        prepared = await self.backend.prepare(request)
        task = await self.store.create(
            NewTask(
                model=prepared.model,
                provider=prepared.provider or request.provider,
                parameters=request.parameters,
                spec=prepared.spec,
                api=request.api,
                owner=owner_of(api_key),
                request_id=request_id,
            ),
            max_pending=self.settings.task_max_pending_per_key,
        )
        log.info("task %s queued (%s, %s API)", task.id, task.model, task.api)
        self.worker.wake()
        return task

    async def get(self, task_id: str, api_key: str | None) -> TaskRecord:
        canonical = _canonical_id(task_id)
        task = await self.store.get(canonical) if canonical else None
        if task is None or (task.owner and task.owner != owner_of(api_key)):
            raise NotFound(
                f"task {task_id!r} does not exist (or has expired; results are kept for "
                f"{_duration(self.settings.task_retention_seconds)})"
            )
        return await self._fresh_links(task)

    async def cancel(self, task_id: str, api_key: str | None) -> TaskRecord:
        """Cancels a queued or running task; a finished one cannot be (FailedPrecondition)."""
        task = await self.get(task_id, api_key)
        if task.status == Status.CANCELED:
            return task
        canceled = await self.store.cancel(task.id, self.settings.task_retention_seconds)
        if canceled is None or canceled.status != Status.CANCELED:
            now = canceled or task
            raise FailedPrecondition(
                f"task {task.id} has already finished ({now.status.value}); only a queued or "
                "running task can be canceled"
            )
        # Running here: stop it now (this cancels its gRPC call); elsewhere: at its heartbeat.
        self.worker.cancel_local(task.id)
        log.info("task %s canceled (was %s)", task.id, task.status.value)
        return canceled

    async def wait(
        self, task_id: str, api_key: str | None, timeout: float | None = None
    ) -> TaskRecord:
        """The task once finished, or as it is after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (
            self.settings.task_sync_wait_seconds if timeout is None else timeout
        )
        while True:
            task = await self.get(task_id, api_key)
            remaining = deadline - loop.time()
            if task.finished or remaining <= 0:
                return task
            event = self._finished.setdefault(task_id, asyncio.Event())
            # Another replica may run it: look again at the poll interval even without news.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    event.wait(), min(remaining, self.settings.task_poll_seconds)
                )

    def _notify(self, task_id: str) -> None:
        event = self._finished.pop(task_id, None)
        if event is not None:
            event.set()

    async def _fresh_links(self, task: TaskRecord) -> TaskRecord:
        """Signs presigned links again when they are about to expire (results outlive them)."""
        output = task.output
        if self.presign is None or output is None or task.status != Status.SUCCEEDED:
            return task
        soon = utcnow().timestamp() + LINK_REFRESH_MARGIN_SECONDS
        stale = [i for i in output.images if i.key and i.url_expires_at and i.url_expires_at < soon]
        if not stale:
            return task
        images = []
        for image in output.images:
            if image in stale:
                url, expires_at = await self.presign(image.key)
                image = replace(image, url=url, url_expires_at=expires_at)
            images.append(image)
        return replace(task, result=replace(output, images=images).to_json())


def _canonical_id(value: str) -> str | None:
    """Task ids are UUIDs in their usual lowercase form; anything else names no task."""
    try:
        return str(uuid.UUID(value)) if len(value) <= 64 else None
    except ValueError:
        return None


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"
