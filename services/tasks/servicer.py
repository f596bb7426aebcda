"""`imagemesh.v1.Tasks` over gRPC: each handler maps its message and delegates to `TaskService`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from imagemesh.v1 import tasks_pb2, tasks_pb2_grpc

from services.common import requestid
from services.common.errors import InvalidArgument
from services.tasks.convert import new_task, task_message
from services.tasks.serving import TaskFinished, TaskService

SERVICE_NAME = tasks_pb2.DESCRIPTOR.services_by_name["Tasks"].full_name
# Trailing metadata key that tells a finished task's FAILED_PRECONDITION from any other.
REASON_KEY = "imagemesh-reason"
DEFAULT_PAGE = 20
MAX_PAGE = 100


class TasksServicer(tasks_pb2_grpc.TasksServicer):
    def __init__(self, service: TaskService) -> None:
        self._service = service

    async def CreateTask(
        self, request: tasks_pb2.CreateTaskRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.Task:
        task = new_task(request, requestid.get_request_id())
        return task_message(await self._service.create(task))

    async def GetTask(
        self, request: tasks_pb2.GetTaskRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.Task:
        return task_message(await self._service.get(request.task_id, request.owner))

    async def CancelTask(
        self, request: tasks_pb2.CancelTaskRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.Task:
        try:
            return task_message(await self._service.cancel(request.task_id, request.owner))
        except TaskFinished as exc:
            await context.abort(exc.code, exc.message, ((REASON_KEY, exc.reason),))
            raise  # abort raises; this line only tells the type checker

    async def ListTasks(
        self, request: tasks_pb2.ListTasksRequest, context: grpc.aio.ServicerContext
    ) -> tasks_pb2.ListTasksResponse:
        if not 0 <= request.page_size <= MAX_PAGE:
            raise InvalidArgument(
                f"page_size must be between 1 and {MAX_PAGE} (0 = {DEFAULT_PAGE})"
            )
        size = request.page_size or DEFAULT_PAGE
        try:
            offset = int(request.page_token or 0)
        except ValueError:
            raise InvalidArgument("page_token is not one this service gave out") from None
        tasks = await self._service.list(request.owner, size + 1, offset)
        more = len(tasks) > size
        return tasks_pb2.ListTasksResponse(
            tasks=[task_message(t) for t in tasks[:size]],
            next_page_token=str(offset + size) if more else "",
        )

    async def WatchTask(
        self, request: tasks_pb2.WatchTaskRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[tasks_pb2.TaskEvent]:
        async for task in self._service.watch(request.task_id, request.owner):
            yield tasks_pb2.TaskEvent(task=task_message(task))
