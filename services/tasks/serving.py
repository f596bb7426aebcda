"""The task service's logic: queue, read, cancel, list and watch tasks; owns the worker and sweeper.

Plain class, testable without gRPC: the servicer maps messages to these calls. The `runner` runs
a claimed task (services/tasks/runner.py in production; tests give their own).

Tasks belong to an owner (the gateway passes the sha256 of the API key): another owner reads them
as unknown. Tasks created without an owner, or by an anonymous caller (`anon:<address hash>`,
which only keys the quota), are readable by anyone who has the id (a random UUID).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

from services.common import tracing
from services.common.errors import FailedPrecondition, NotFound
from services.tasks.backends import unserved
from services.tasks.outbox import Outbox
from services.tasks.records import TRACE_KEY, NewTask, Status, TaskRecord, is_anonymous
from services.tasks.retention import Retention
from services.tasks.settings import TasksSettings
from services.tasks.store import TaskStore, utcnow
from services.tasks.webhooks import WebhookDispatcher
from services.tasks.worker import Discard, Runner, TaskWorker

log = logging.getLogger("imagemesh.tasks")

# A presigned link this close to its expiry is signed again before it is shown.
LINK_REFRESH_MARGIN_SECONDS = 300

Presign = Callable[[str], Awaitable[tuple[str, int]]]


class TaskFinished(FailedPrecondition):
    """Canceling a task that already succeeded or failed: the caller's mistake, not the service's
    state (the servicer marks it with the trailing metadata `imagemesh-reason: task-finished`)."""

    reason = "task-finished"


class TaskService:
    def __init__(
        self,
        settings: TasksSettings,
        store: TaskStore,
        runner: Runner,
        *,
        delete_objects: Discard | None = None,
        presign: Presign | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.presign = presign
        self._finished: dict[str, asyncio.Event] = {}
        self.worker = TaskWorker(
            store,
            runner,
            worker_id=worker_id,
            concurrency=settings.workers,
            lease_seconds=settings.lease_seconds,
            max_attempts=settings.max_attempts,
            retention_seconds=settings.retention_seconds,
            poll_seconds=settings.poll_seconds,
            busy_retry_seconds=settings.busy_retry_seconds,
            max_queue_seconds=settings.max_queue_seconds,
            discard=delete_objects,
            on_finished=self._notify,
        )
        self.retention = Retention(
            store, delete_objects, interval_seconds=settings.retention_sweep_seconds
        )
        self.webhooks = WebhookDispatcher(settings, Outbox(store.engine), self._load, store.clock)

    async def start(self) -> None:
        """Starts running queued tasks (those left from before a restart first, by age)."""
        if self.settings.workers > 0:
            await self.worker.start()
        await self.retention.start()
        await self.webhooks.start()

    async def close(self) -> None:
        await self.webhooks.stop()
        await self.retention.stop()
        await self.worker.stop(self.settings.worker_grace_seconds)
        await self.store.close()

    async def create(self, new: NewTask) -> TaskRecord:
        self.webhooks.check(new.callback_url)
        server = str(new.spec.get("server", ""))
        if server and server not in self.settings.model_servers:
            # Refused now rather than failed later: no worker of this service could run it.
            raise FailedPrecondition(unserved(new.model, server))
        carrier = tracing.carrier()
        if carrier:
            new = replace(new, spec={**new.spec, TRACE_KEY: carrier})
        task = await self.store.create(new, max_pending=self.settings.max_pending_per_key)
        log.info("task %s queued (%s, %s API)", task.id, task.model, task.api)
        self.worker.wake()
        return task

    async def get(self, task_id: str, owner: str) -> TaskRecord:
        canonical = _canonical_id(task_id)
        task = await self.store.get(canonical) if canonical else None
        if task is None or (not is_anonymous(task.owner) and task.owner != owner):
            raise NotFound(
                f"task {task_id!r} does not exist (or has expired; results are kept for "
                f"{_duration(self.settings.retention_seconds)})"
            )
        return await self._fresh_links(task)

    async def list(self, owner: str, limit: int, offset: int = 0) -> list[TaskRecord]:
        tasks = await self.store.list_for_owner(owner, limit, offset)
        return [await self._fresh_links(task) for task in tasks]

    async def cancel(self, task_id: str, owner: str) -> TaskRecord:
        """Cancels a queued or running task; a finished one cannot be (TaskFinished)."""
        task = await self.get(task_id, owner)
        if task.status == Status.CANCELED:
            return task
        canceled = await self.store.cancel(task.id, self.settings.retention_seconds)
        if canceled is None or canceled.status != Status.CANCELED:
            now = canceled or task
            raise TaskFinished(
                f"task {task.id} has already finished ({now.status.value}); only a queued or "
                "running task can be canceled"
            )
        # Running here: stop it now (this cancels its gRPC call); elsewhere: at its heartbeat.
        self.worker.cancel_local(task.id)
        self.webhooks.wake()
        log.info("task %s canceled (was %s)", task.id, task.status.value)
        return canceled

    async def watch(self, task_id: str, owner: str) -> AsyncIterator[TaskRecord]:
        """The task now, then each time its status or attempt changes, until it finishes."""
        task = await self.get(task_id, owner)
        yield task
        seen = (task.status, task.attempts)
        try:
            while not task.finished:
                event = self._finished.setdefault(task.id, asyncio.Event())
                # Another replica may run it: look again at the poll interval even without news.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), self.settings.poll_seconds)
                task = await self.get(task_id, owner)
                if (task.status, task.attempts) != seen:
                    seen = (task.status, task.attempts)
                    yield task
        finally:
            # Finished in another replica, or the watcher left: no event is kept for it.
            self._finished.pop(task.id, None)

    async def _load(self, task_id: str) -> TaskRecord | None:
        task = await self.store.get(task_id)
        return await self._fresh_links(task) if task else None

    def _notify(self, task_id: str) -> None:
        self.webhooks.wake()
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
        result: dict[str, Any] = replace(output, images=images).to_json()
        return replace(task, result=result)


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
