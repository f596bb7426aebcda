"""Plain types of the task queue: a new task, a stored task, and what running one produced."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


PENDING = (Status.QUEUED, Status.RUNNING)
FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)

# An anonymous caller's owner: `anon:` and a hash of its address. Such a task counts against
# that address's quota (max_pending_per_key) but, like one with no owner, is readable by anyone
# who has its id.
ANONYMOUS_PREFIX = "anon:"


def is_anonymous(owner: str) -> bool:
    return not owner or owner.startswith(ANONYMOUS_PREFIX)


# The creating request's trace context (W3C traceparent), kept in the spec when tracing is on so
# that the run, in whichever replica, joins that trace (spec_of ignores unknown keys).
TRACE_KEY = "_trace"


@dataclass(frozen=True)
class NewTask:
    model: str
    parameters: dict[str, Any]
    spec: dict[str, Any] = field(default_factory=dict)
    api: str = "tasks"
    provider: str = ""
    owner: str = ""
    request_id: str = ""
    # POSTed one signed event when the task ends (services/tasks/webhooks.py); "" = none.
    callback_url: str = ""


@dataclass(frozen=True)
class TaskImage:
    """One generated image, kept in our bucket under `key`."""

    index: int
    url: str
    key: str = ""
    seed: int | None = None
    width: int = 0
    height: int = 0
    # Unix seconds when a presigned `url` stops working; 0 for a public link.
    url_expires_at: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskImage:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass(frozen=True)
class TaskOutput:
    """What the runner answers for a task; stored as the task's result."""

    images: list[TaskImage]
    # The number of images asked for (DashScope's task_metrics.TOTAL).
    requested: int = 0
    # The prompt after a `prompt_extend` rewrite, when one happened.
    actual_prompt: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskOutput:
        return cls(
            images=[TaskImage.from_json(i) for i in data.get("images", [])],
            requested=int(data.get("requested") or 0),
            actual_prompt=data.get("actual_prompt"),
            extra=dict(data.get("extra") or {}),
        )

    @property
    def keys(self) -> list[str]:
        return [image.key for image in self.images if image.key]


@dataclass(frozen=True)
class TaskRecord:
    id: str
    owner: str
    api: str
    model: str
    provider: str
    parameters: dict[str, Any]
    spec: dict[str, Any]
    request_id: str
    status: Status
    attempts: int
    worker_id: str | None
    locked_until: datetime | None
    created_at: datetime
    available_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime | None
    result: dict[str, Any] | None
    error_code: str | None
    error_message: str | None

    @classmethod
    def from_row(cls, row: Any) -> TaskRecord:
        data = {name: row[name] for name in cls.__dataclass_fields__}
        data["status"] = Status(data["status"])
        return cls(**data)

    @property
    def output(self) -> TaskOutput | None:
        return TaskOutput.from_json(self.result) if self.result is not None else None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED
