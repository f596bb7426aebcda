"""Messages <-> the queue's plain records: a CreateTaskRequest checked into a `NewTask`, a stored
`TaskRecord` as a `Task` message. The spec is kept as the TaskSpec message's JSON form, so the
runner reads back exactly what was sent. Parameters shown back are `storable` (no NaN), even
from rows stored before that was checked."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from google.protobuf import json_format
from imagemesh.v1 import tasks_pb2

from services.common.errors import InvalidArgument
from services.common.structs import struct_dict
from services.tasks.records import NewTask, Status, TaskRecord
from services.tasks.storable import storable

MAX_PARAMETERS_BYTES = 64 * 1024
MAX_IMAGES = 10

STATUS = {
    Status.QUEUED: tasks_pb2.TASK_STATUS_QUEUED,
    Status.RUNNING: tasks_pb2.TASK_STATUS_RUNNING,
    Status.SUCCEEDED: tasks_pb2.TASK_STATUS_SUCCEEDED,
    Status.FAILED: tasks_pb2.TASK_STATUS_FAILED,
    Status.CANCELED: tasks_pb2.TASK_STATUS_CANCELED,
}


def new_task(request: tasks_pb2.CreateTaskRequest, request_id: str) -> NewTask:
    """The task to queue; InvalidArgument naming the field when the request is malformed."""
    spec = request.spec
    if not spec.model:
        raise InvalidArgument("spec.model is required: the public model name")
    if spec.backend == tasks_pb2.TASK_BACKEND_UNSPECIFIED:
        raise InvalidArgument(
            "spec.backend is required: TASK_BACKEND_QWEN_IMAGE or TASK_BACKEND_PROVIDERS"
        )
    if not spec.prompt.strip():
        raise InvalidArgument("spec.prompt is required")
    if not 1 <= spec.n <= MAX_IMAGES:
        raise InvalidArgument(f"spec.n must be between 1 and {MAX_IMAGES} (got {spec.n})")
    for name in ("width", "height", "num_inference_steps"):
        if getattr(spec, name) < 0:
            raise InvalidArgument(f"spec.{name} must be >= 0 (0 = the backend's default)")
    parameters = struct_dict(request.parameters)
    if len(json.dumps(parameters)) > MAX_PARAMETERS_BYTES:
        raise InvalidArgument(f"parameters must be at most {MAX_PARAMETERS_BYTES} bytes as JSON")
    for name, limit in (
        ("model", 200),
        ("owner", 64),
        ("api", 16),
        ("provider", 64),
        ("callback_url", 2048),
    ):
        if len(getattr(request.spec if name == "model" else request, name)) > limit:
            raise InvalidArgument(f"{name} must be at most {limit} characters")
    return NewTask(
        model=spec.model,
        parameters=parameters,
        spec=json_format.MessageToDict(spec, preserving_proto_field_name=True),
        api=request.api or "tasks",
        provider=request.provider,
        owner=request.owner,
        request_id=request_id[:128],
        callback_url=request.callback_url,
    )


def spec_of(task: TaskRecord) -> tasks_pb2.TaskSpec:
    return json_format.ParseDict(task.spec, tasks_pb2.TaskSpec(), ignore_unknown_fields=True)


def _ms(value: datetime | None) -> int:
    return int(value.timestamp() * 1000) if value else 0


def task_message(task: TaskRecord) -> tasks_pb2.Task:
    message = tasks_pb2.Task(
        id=task.id,
        status=STATUS[task.status],
        model=task.model,
        provider=task.provider,
        api=task.api,
        attempts=task.attempts,
        created_at_ms=_ms(task.created_at),
        started_at_ms=_ms(task.started_at),
        finished_at_ms=_ms(task.finished_at),
        expires_at_ms=_ms(task.expires_at),
        error_code=task.error_code or "",
        error_message=task.error_message or "",
        request_id=task.request_id,
    )
    message.parameters.update(_jsonable(task.parameters))
    output = task.output
    if output is not None:
        for image in output.images:
            item = message.images.add(
                index=image.index,
                url=image.url,
                key=image.key,
                width=image.width,
                height=image.height,
                url_expires_at=image.url_expires_at,
            )
            if image.seed is not None:
                item.seed = image.seed
        message.requested = output.requested
        if output.actual_prompt:
            message.actual_prompt = output.actual_prompt
        message.warnings.extend(str(w) for w in output.extra.get("warnings", []))
    return message


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    # Struct holds JSON values only; anything else (never stored by us) is shown as text, and a
    # NaN stored before it was refused is null (the gateway's answer could not encode it).
    return dict(storable(json.loads(json.dumps(value, default=str))))
