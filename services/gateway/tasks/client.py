"""The gateway's client of the tasks service: create, read, cancel and wait for tasks over gRPC.

Tasks belong to the API key that created them: the tasks service keeps the key's sha256 as the
task's owner (never the key itself) and answers another key's task as unknown. Errors come back
as the gateway's one error table makes them (`errors.from_rpc_error`).
"""

from __future__ import annotations

import asyncio
import hashlib

import grpc
from imagemesh.v1 import tasks_pb2

from services.common import requestid
from services.gateway.clients import Backends
from services.gateway.edits.masks import check_mask_size
from services.gateway.errors import from_rpc_error
from services.gateway.settings import GatewaySettings
from services.gateway.sources import ImageSources, Input
from services.gateway.tasks.inputs import image_inputs
from services.gateway.tasks.prepare import TaskPreparer, TaskRequest
from services.gateway.tasks.view import Task

WHAT = "the task service"
# The tasks service's mark of an anonymous caller's owner (services/tasks/records.py).
ANONYMOUS_PREFIX = "anon:"
# A watch that ends like this after it has shown the task is followed again, not failed.
_CUT_SHORT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
_REWATCH_SECONDS = 0.2


def _task_id(value: str) -> str:
    # A path may decode to text that is not UTF-8 (lone surrogates); such an id names no task,
    # and a protobuf string cannot carry it.
    return value.encode("utf-8", "replace").decode("utf-8")


def owner_of(api_key: str | None) -> str:
    """The owner the tasks service keeps for an API key: its sha256 ("" when there is none)."""
    return hashlib.sha256(api_key.encode()).hexdigest() if api_key else ""


def creator_of(api_key: str | None, address: str) -> str:
    """The owner a new task gets: the key's, or for an anonymous caller `anon:` and a hash of
    its address, which keys its own quota of pending tasks (anyone with the id reads it)."""
    if api_key or not address:
        return owner_of(api_key)
    return ANONYMOUS_PREFIX + hashlib.sha256(address.encode()).hexdigest()[:48]


class TasksClient:
    def __init__(
        self,
        settings: GatewaySettings,
        backends: Backends,
        preparer: TaskPreparer,
        sources: ImageSources,
    ):
        self._settings = settings
        self._backends = backends
        self._preparer = preparer
        self._sources = sources

    @property
    def forwarded_hops(self) -> int:
        """Proxies in front of the gateway (the caller's address is read behind them)."""
        return self._settings.forwarded_hops

    async def _unary(self, method: str, request: object) -> Task:
        answer = await self._backends.unary(
            "tasks",
            getattr(self._backends.tasks, method),
            request,
            deadline=self._settings.tasks_deadline_seconds,
            what=WHAT,
        )
        return Task.from_message(answer)

    async def create(self, request: TaskRequest, api_key: str | None, address: str = "") -> Task:
        """Checks the request here (404 / 400 before anything is queued, input images fetched
        and checked), then queues it."""
        create = self._preparer.prepare(request)
        create.owner = creator_of(api_key, address)
        if create.spec.backend == tasks_pb2.TASK_BACKEND_QWEN_IMAGE:
            await self._fetch_inputs(request, create.spec)
        return await self._unary("CreateTask", create)

    async def _fetch_inputs(self, request: TaskRequest, spec: tasks_pb2.TaskSpec) -> None:
        inputs = image_inputs(request.parameters)
        loaded = await self._sources.load_all([Input(i.param, text=i.value) for i in inputs])
        for given, data in zip(inputs, loaded, strict=True):
            getattr(spec, given.field).data = data
        if len(inputs) == 2:
            check_mask_size(loaded[0], loaded[1], inputs[0].param)

    async def get(self, task_id: str, api_key: str | None) -> Task:
        return await self._unary(
            "GetTask", tasks_pb2.GetTaskRequest(task_id=_task_id(task_id), owner=owner_of(api_key))
        )

    async def cancel(self, task_id: str, api_key: str | None) -> Task:
        return await self._unary(
            "CancelTask",
            tasks_pb2.CancelTaskRequest(task_id=_task_id(task_id), owner=owner_of(api_key)),
        )

    async def wait(
        self,
        task_id: str,
        api_key: str | None,
        timeout: float | None = None,
        seen: Task | None = None,
    ) -> Task:
        """The task once finished, or as it is after `timeout` seconds (default: the sync wait).

        Follows the tasks service's WatchTask stream. Once the task is known to exist (`seen`,
        e.g. just created, or shown by the stream), a stream cut short (a replica shutting down,
        a dropped connection) is opened again, on another replica, until the time is up.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (
            self._settings.task_sync_wait_seconds if timeout is None else timeout
        )
        request = tasks_pb2.WatchTaskRequest(task_id=_task_id(task_id), owner=owner_of(api_key))
        last = seen
        while (remaining := deadline - loop.time()) > 0:
            call = self._backends.tasks.WatchTask(
                request, timeout=remaining, metadata=requestid.outgoing_metadata()
            )
            try:
                async for event in call:
                    last = Task.from_message(event.task)
                    if last.finished:
                        return last
            except grpc.aio.AioRpcError as exc:
                # The wait's own deadline is not an error: the caller answers the task as it is.
                if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED and last is not None:
                    break
                if exc.code() not in _CUT_SHORT or last is None:
                    raise from_rpc_error(exc, WHAT, self._settings.retry_after_seconds) from None
            finally:
                call.cancel()
            await asyncio.sleep(min(_REWATCH_SECONDS, max(0.0, deadline - loop.time())))
        return last if last is not None else await self.get(task_id, api_key)
