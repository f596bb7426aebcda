"""Wire shapes of the task API: seed 001's (in the gateway's envelope) and DashScope's async ones.

Seed 001: `POST /api/v1/tasks/` `{model, provider, parameters, is_async}`, then
`GET /api/v1/tasks/{id}/status|result`. Answers carry the envelope (`code` 0, `message`,
`request_id`) and the seed's own fields (`success`, `results: {task_id, status, result, error}`),
so clients of either read them. Statuses: pending, running, completed, failed, canceled.

DashScope (`../shared/protocols/dashscope.md` sections 2-4): `output.task_id`/`task_status`
(PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED, UNKNOWN), times as `YYYY-MM-DD HH:MM:SS.mmm`,
`output.results[].url`, `output.task_metrics`, `usage.image_count`; errors as top-level
`{request_id, code, message}`. These are answered raw (no envelope): DashScope clients parse them.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.gateway.apierror import invalid
from services.gateway.tasks.view import Status, Task

SEED_STATUS = {
    Status.QUEUED: "pending",
    Status.RUNNING: "running",
    Status.SUCCEEDED: "completed",
    Status.FAILED: "failed",
    Status.CANCELED: "canceled",
}
DASHSCOPE_STATUS = {
    Status.QUEUED: "PENDING",
    Status.RUNNING: "RUNNING",
    Status.SUCCEEDED: "SUCCEEDED",
    Status.FAILED: "FAILED",
    Status.CANCELED: "CANCELED",
}
# DashScope's error codes by HTTP status (section 4 of the protocol notes).
DASHSCOPE_CODES = {
    400: "InvalidParameter",
    401: "InvalidApiKey",
    403: "AccessDenied",
    404: "ModelNotFound",
    413: "InvalidParameter",
    415: "InvalidParameter",
    429: "Throttling",
    503: "ServiceUnavailable",
    504: "RequestTimeOut",
}


class TaskCreateRequest(BaseModel):
    """Seed 001's create body. `parameters` are the model's own (prompt, size, n, ...)."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, examples=["wanx2.1-t2i-turbo"])
    provider: str | None = Field(default=None, examples=["aliyun"])
    parameters: dict[str, Any] = Field(
        default_factory=dict, examples=[{"prompt": "a cat on the grass", "size": "1024*1024"}]
    )
    # false: wait for the task to finish and answer its result.
    is_async: bool = True
    # When the task ends, one signed event is POSTed here (README "Webhooks").
    callback_url: str | None = Field(default=None, max_length=2048)


class SynthesisInput(BaseModel):
    model_config = ConfigDict(extra="allow")

    prompt: str = Field(min_length=1)
    negative_prompt: str | None = None


class SynthesisRequest(BaseModel):
    """DashScope's `POST /services/aigc/text2image/image-synthesis` body."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, examples=["wanx2.1-t2i-turbo"])
    input: SynthesisInput
    parameters: dict[str, Any] = Field(
        default_factory=dict, examples=[{"size": "1024*1024", "n": 1}]
    )

    def task_parameters(self) -> dict[str, Any]:
        """One parameter dialect for both APIs: the prompt beside the knobs (seed 001's form)."""
        merged = dict(self.parameters)
        extra = {k: v for k, v in (self.input.model_extra or {}).items() if v is not None}
        merged.update(extra)
        merged["prompt"] = self.input.prompt
        # The Wan docs put negative_prompt in input, the Qwen async example in parameters.
        if self.input.negative_prompt is not None:
            merged["negative_prompt"] = self.input.negative_prompt
        return merged


def image_parts(body: dict[str, Any]) -> list[Any]:
    """The `{"image": ...}` parts of a DashScope multimodal request's user messages."""
    found: list[Any] = []
    messages = (
        (body.get("input") or {}).get("messages") if isinstance(body.get("input"), dict) else None
    )
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and part.get("image"):
                found.append(part["image"])
    return found


def mask_image(body: dict[str, Any], has_image: bool) -> Any:
    """`input.mask_image_url` (DashScope's image-edit name for the mask), or None; it needs an
    image part to apply to."""
    given = body.get("input") if isinstance(body.get("input"), dict) else {}
    mask = given.get("mask_image_url") if isinstance(given, dict) else None
    if mask in (None, ""):
        return None
    if not has_image:
        raise invalid(
            'input.mask_image_url needs the image it applies to: give it as a {"image": ...} '
            "part of the user message's content",
            "input.mask_image_url",
        )
    return mask


def seed_time(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else None


def dashscope_time(value: datetime | None) -> str | None:
    return (
        value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}" if value else None
    )


def envelope(request_id: str, results: dict[str, Any], message: str = "success") -> dict[str, Any]:
    return {
        "code": 0,
        "message": message,
        "created": int(time.time()),
        "request_id": request_id,
        "success": True,
        "results": results,
    }


def _error(task: Task) -> dict[str, str] | None:
    if task.status in (Status.FAILED, Status.CANCELED):
        return {"code": task.error_code or "InternalError", "message": task.error_message or ""}
    return None


def seed_status(task: Task) -> dict[str, Any]:
    return {
        "task_id": task.id,
        "status": SEED_STATUS[task.status],
        "model": task.model,
        "provider": task.provider or None,
        "created": seed_time(task.created_at),
        "started": seed_time(task.started_at),
        "finished": seed_time(task.finished_at),
        "attempts": task.attempts,
        "error": _error(task),
    }


def seed_result(task: Task) -> dict[str, Any]:
    """`results` of GET .../result: the images once completed, else `result: null`."""
    result: dict[str, Any] | None = None
    if task.status == Status.SUCCEEDED:
        first = task.images[0] if task.images else None
        result = {
            "id": task.id,
            "model": task.model,
            "provider": task.provider or None,
            "created": seed_time(task.finished_at),
            "images": [
                {
                    "index": i.index,
                    "url": i.url,
                    "seed": i.seed,
                    "width": i.width,
                    "height": i.height,
                }
                for i in task.images
            ],
            "prompt": task.parameters.get("prompt"),
            "actual_prompt": task.actual_prompt,
            "width": first.width if first else None,
            "height": first.height if first else None,
            "parameters": task.parameters,
        }
    return {
        "task_id": task.id,
        "status": SEED_STATUS[task.status],
        "result": result,
        "error": _error(task),
    }


def dashscope_created(task: Task, request_id: str) -> dict[str, Any]:
    return {
        "output": {"task_id": task.id, "task_status": DASHSCOPE_STATUS[task.status]},
        "request_id": request_id,
    }


def dashscope_task(task: Task, request_id: str) -> dict[str, Any]:
    """The poll answer: `GET /api/v1/tasks/{task_id}`."""
    output: dict[str, Any] = {
        "task_id": task.id,
        "task_status": DASHSCOPE_STATUS[task.status],
        "submit_time": dashscope_time(task.created_at),
    }
    if task.started_at:
        output["scheduled_time"] = dashscope_time(task.started_at)
    if task.finished_at:
        output["end_time"] = dashscope_time(task.finished_at)
    body: dict[str, Any] = {"request_id": request_id, "output": output}
    if task.status == Status.SUCCEEDED:
        prompt = task.parameters.get("prompt")
        items = []
        for image in task.images:
            item: dict[str, Any] = {"url": image.url}
            if prompt is not None:
                item["orig_prompt"] = prompt
            if task.actual_prompt:
                item["actual_prompt"] = task.actual_prompt
            items.append(item)
        total = max(task.requested, len(items))
        # A partial success lists the images that failed as items with code/message.
        items.extend(
            {"code": "InternalError", "message": "this image was not generated"}
            for _ in range(total - len(items))
        )
        output["results"] = items
        output["task_metrics"] = {
            "TOTAL": total,
            "SUCCEEDED": len(task.images),
            "FAILED": total - len(task.images),
        }
        body["usage"] = {"image_count": len(task.images)}
    elif task.status in (Status.FAILED, Status.CANCELED):
        error = _error(task) or {}
        output["code"] = error.get("code")
        output["message"] = error.get("message")
        requested = (
            int(task.parameters.get("n") or 1) if isinstance(task.parameters.get("n"), int) else 1
        )
        output["task_metrics"] = {"TOTAL": requested, "SUCCEEDED": 0, "FAILED": requested}
    return body


def dashscope_unknown(task_id: str, request_id: str) -> dict[str, Any]:
    """What DashScope answers for a task it does not know (or no longer keeps): 200, UNKNOWN."""
    return {"request_id": request_id, "output": {"task_id": task_id, "task_status": "UNKNOWN"}}


def dashscope_error(
    status: int, message: str, request_id: str, code: str | None = None
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "code": code or DASHSCOPE_CODES.get(status, "InternalError"),
        "message": message,
    }
