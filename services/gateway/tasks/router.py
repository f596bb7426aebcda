"""Routes of the task API: seed 001's (`/api/v1/tasks/...`) and DashScope's async protocol.

The routes are a thin REST face of the tasks service (`client.TasksClient`, gRPC). Seed 001's
routes answer in the gateway's envelope and fail through its exception handlers, whose one table
(`errors.py`) maps every gRPC status, the task service's included. DashScope's routes
(`image-synthesis`, `GET /api/v1/tasks/{task_id}`, the sync `multimodal-generation`) answer
DashScope's raw shapes, errors included (`{request_id, code, message}`, the status from that same
table), since DashScope clients parse those.
`POST /api/v1/tasks/{id}/cancel` is both APIs' cancel: it answers the envelope, which DashScope's
SDK reads as success (HTTP 200), and cancels running tasks too (DashScope: queued only).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.common import requestid
from services.common.errors import ServiceError
from services.gateway.apierror import ApiError
from services.gateway.bodies import json_body, read_json
from services.gateway.clientaddress import client_address
from services.gateway.disconnect import unless_disconnected
from services.gateway.edits.protocol import EditJsonRequest, json_spec
from services.gateway.errors import from_service_error
from services.gateway.images.protocol import DashScopeImageRequest, dashscope_answer, dashscope_spec
from services.gateway.tasks import protocol
from services.gateway.tasks.client import TasksClient
from services.gateway.tasks.prepare import TaskRequest
from services.gateway.tasks.protocol import SynthesisRequest, TaskCreateRequest
from services.gateway.validation import parse

log = logging.getLogger("imagemesh.gateway.tasks")

router = APIRouter(tags=["tasks"])
BODY_MODELS = (TaskCreateRequest, SynthesisRequest)
TASK_ID = "{task_id}"


def _service(request: Request) -> TasksClient:
    return request.app.state.tasks  # type: ignore[no-any-return]


def _address(request: Request) -> str:
    """The caller's address: an anonymous caller's quota of pending tasks is kept per address."""
    return client_address(request, _service(request).forwarded_hops)


def api_key(request: Request) -> str | None:
    """The bearer key (already checked by the gateway's ApiKeys middleware when keys are set)."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return key.strip() or None if scheme.lower() == "bearer" else None


async def _dashscope(call: Callable[[], Awaitable[JSONResponse]]) -> JSONResponse:
    """Runs a DashScope handler; errors answer DashScope's `{request_id, code, message}`."""
    try:
        return await call()
    except (ApiError, ServiceError) as exc:
        err = exc if isinstance(exc, ApiError) else from_service_error(exc)
        rid = requestid.get_request_id()
        body = protocol.dashscope_error(err.status, err.message, rid)
        return JSONResponse(body, status_code=err.status, headers=err.headers)


@router.post(
    "/api/v1/tasks/",
    summary="Create an image task (seed 001): answers its id at once, or its result if is_async is false",
    openapi_extra=json_body(TaskCreateRequest),
)
@router.post("/api/v1/tasks", include_in_schema=False, openapi_extra=json_body(TaskCreateRequest))
async def create_task(request: Request) -> JSONResponse:
    body = parse(TaskCreateRequest, await read_json(request))
    service = _service(request)
    key = api_key(request)
    rid = requestid.get_request_id()
    task = await service.create(
        TaskRequest(
            body.model, body.parameters, body.provider or "", "tasks", body.callback_url or ""
        ),
        key,
        _address(request),
    )
    if body.is_async:
        return JSONResponse(protocol.envelope(rid, protocol.seed_status(task)))
    # A client that hangs up stops the wait, and with it the watch of the task (which runs on).
    task = await unless_disconnected(request, service.wait(task.id, key, seen=task))
    if not task.finished:
        # Still running after the wait cap: the client polls like an async one.
        return JSONResponse(
            protocol.envelope(
                rid,
                protocol.seed_result(task),
                f"task still {task.status.value}; poll its result",
            ),
            status_code=202,
        )
    return JSONResponse(protocol.envelope(rid, protocol.seed_result(task)))


@router.get(f"/api/v1/tasks/{TASK_ID}/status", summary="A task's status (seed 001)")
async def task_status(task_id: str, request: Request) -> JSONResponse:
    task = await _service(request).get(task_id, api_key(request))
    return JSONResponse(protocol.envelope(requestid.get_request_id(), protocol.seed_status(task)))


@router.get(
    f"/api/v1/tasks/{TASK_ID}/result",
    summary="A task's result: its images once completed (seed 001)",
)
async def task_result(task_id: str, request: Request) -> JSONResponse:
    task = await _service(request).get(task_id, api_key(request))
    return JSONResponse(protocol.envelope(requestid.get_request_id(), protocol.seed_result(task)))


@router.post(f"/api/v1/tasks/{TASK_ID}/cancel", summary="Cancel a queued or running task")
async def cancel_task(task_id: str, request: Request) -> JSONResponse:
    task = await _service(request).cancel(task_id, api_key(request))
    return JSONResponse(protocol.envelope(requestid.get_request_id(), protocol.seed_status(task)))


@router.post(
    "/api/v1/services/aigc/text2image/image-synthesis",
    summary="Create a text-to-image task (DashScope async protocol; needs X-DashScope-Async: enable)",
    openapi_extra=json_body(SynthesisRequest),
)
async def image_synthesis(request: Request) -> JSONResponse:
    async def call() -> JSONResponse:
        if request.headers.get("x-dashscope-async", "").lower() != "enable":
            return JSONResponse(
                protocol.dashscope_error(
                    403,
                    "current user api does not support synchronous calls; "
                    "send the header X-DashScope-Async: enable",
                    requestid.get_request_id(),
                ),
                status_code=403,
            )
        body = await read_json(request)
        rid = requestid.get_request_id()
        for field, code in (("model", "BadRequest.EmptyModel"), ("input", "BadRequest.EmptyInput")):
            if not body.get(field):
                message = f"{field} is required" + (": the model name" if field == "model" else "")
                return JSONResponse(
                    protocol.dashscope_error(400, message, rid, code), status_code=400
                )
        parsed = parse(SynthesisRequest, body)
        task = await _service(request).create(
            TaskRequest(parsed.model, parsed.task_parameters(), "", "dashscope"),
            api_key(request),
            _address(request),
        )
        return JSONResponse(protocol.dashscope_created(task, rid))

    return await _dashscope(call)


@router.get(f"/api/v1/tasks/{TASK_ID}", summary="Poll a task (DashScope async protocol)")
async def dashscope_task(task_id: str, request: Request) -> JSONResponse:
    async def call() -> JSONResponse:
        rid = requestid.get_request_id()
        try:
            task = await _service(request).get(task_id, api_key(request))
        except ApiError as exc:
            if exc.status != 404:
                raise
            # DashScope answers an unknown (or expired) task as UNKNOWN, not as an error.
            return JSONResponse(protocol.dashscope_unknown(task_id, rid))
        return JSONResponse(protocol.dashscope_task(task, rid))

    return await _dashscope(call)


@router.post(
    "/api/v1/services/aigc/multimodal-generation/generation",
    summary="Generate (or edit, with image parts) synchronously (DashScope's Qwen-Image API)",
    openapi_extra=json_body(DashScopeImageRequest),
)
async def multimodal_generation(request: Request) -> JSONResponse:
    """DashScope's sync endpoint: the gateway's DashScope image shape, answered DashScope's way."""

    async def call() -> JSONResponse:
        body = await read_json(request)
        rid = requestid.get_request_id()
        for field, code in (("model", "BadRequest.EmptyModel"), ("input", "BadRequest.EmptyInput")):
            if not body.get(field):
                message = f"{field} is required"
                return JSONResponse(
                    protocol.dashscope_error(400, message, rid, code), status_code=400
                )
        sources = protocol.image_parts(body)
        mask = protocol.mask_image(body, bool(sources))
        if sources:
            # Qwen-Image-Edit's form: image parts beside the text (protocol notes section 6);
            # DashScope's image-edit form names the mask input.mask_image_url.
            parsed = parse(DashScopeImageRequest, body)
            fields = {
                **(body.get("parameters") or {}),
                "model": parsed.model,
                "prompt": parsed.prompt(),
                "image": sources,
                "mask": mask,
            }
            edit = json_spec(parse(EditJsonRequest, fields))
            if edit.mask is not None:
                edit.mask.param = "input.mask_image_url"
            outcome = await request.app.state.edits.edit(edit)
        else:
            spec = dashscope_spec(parse(DashScopeImageRequest, body))
            outcome = await request.app.state.images.generate(spec)
        answer = dashscope_answer(outcome)
        return JSONResponse(
            {"output": answer["output"], "usage": answer["usage"], "request_id": rid}
        )

    return await _dashscope(call)
