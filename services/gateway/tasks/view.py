"""A task as the gateway shows it: the tasks service's `Task` message as plain Python values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from imagemesh.v1 import tasks_pb2

from services.common.structs import struct_dict


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)
_STATUS = {
    tasks_pb2.TASK_STATUS_QUEUED: Status.QUEUED,
    tasks_pb2.TASK_STATUS_RUNNING: Status.RUNNING,
    tasks_pb2.TASK_STATUS_SUCCEEDED: Status.SUCCEEDED,
    tasks_pb2.TASK_STATUS_FAILED: Status.FAILED,
    tasks_pb2.TASK_STATUS_CANCELED: Status.CANCELED,
}


@dataclass(frozen=True)
class TaskImage:
    index: int
    url: str
    seed: int | None = None
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class Task:
    id: str
    status: Status
    model: str
    provider: str
    parameters: dict[str, Any]
    attempts: int
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    images: list[TaskImage] = field(default_factory=list)
    # The number of images asked for (DashScope's task_metrics.TOTAL).
    requested: int = 0
    actual_prompt: str | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @classmethod
    def from_message(cls, message: tasks_pb2.Task) -> Task:
        return cls(
            id=message.id,
            # A status this gateway does not know yet reads as queued: not finished, poll on.
            status=_STATUS.get(message.status, Status.QUEUED),
            model=message.model,
            provider=message.provider,
            parameters=struct_dict(message.parameters),
            attempts=message.attempts,
            created_at=_time(message.created_at_ms) or datetime.now(UTC),
            started_at=_time(message.started_at_ms),
            finished_at=_time(message.finished_at_ms),
            images=[
                TaskImage(
                    index=i.index,
                    url=i.url,
                    seed=i.seed if i.HasField("seed") else None,
                    width=i.width,
                    height=i.height,
                )
                for i in message.images
            ],
            requested=message.requested,
            actual_prompt=message.actual_prompt if message.HasField("actual_prompt") else None,
            error_code=message.error_code or None,
            error_message=message.error_message or None,
        )


def _time(ms: int) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None
