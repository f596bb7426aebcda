"""POST /v1/images/edits: JSON (images by URL, data URL or base64) or multipart (files); with
`stream: true` (a JSON field or a form field) the answer is server-sent events (`sse.py`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from services.gateway.bodies import json_body, read_json
from services.gateway.disconnect import unless_disconnected
from services.gateway.edits.protocol import (
    EditFormFields,
    EditFormRequest,
    EditJsonRequest,
    form_spec,
    json_spec,
)
from services.gateway.edits.serving import ImageEditService
from services.gateway.errors import invalid
from services.gateway.images.protocol import OpenAIImagesResponse, openai_answer
from services.gateway.misspellings import check_names
from services.gateway.sse import OPENAPI, respond
from services.gateway.streamed_json import json_answer
from services.gateway.validation import parse

router = APIRouter(tags=["images"])
BODY_MODELS = (EditJsonRequest, EditFormRequest)
IMAGE_FIELDS = ("image", "image[]", "images", "images[]")


@router.post(
    "/v1/images/edits",
    summary="Edit images: JSON (image URLs / data URLs / base64) or multipart (image files)",
    openapi_extra=json_body(EditJsonRequest, multipart=EditFormRequest),
    response_model=OpenAIImagesResponse,
    responses=OPENAPI,
)
async def edits(request: Request) -> Response:
    service: ImageEditService = request.app.state.edits
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        spec = await _form(request)
    else:
        body = await read_json(request)
        check_names(body, EditJsonRequest)
        spec = json_spec(parse(EditJsonRequest, body))
    if spec.stream:
        return await respond(request, "image_edit", service.stream(spec))
    answer = await unless_disconnected(request, service.answer(spec))
    return json_answer(answer, openai_answer)


async def _form(request: Request) -> Any:
    settings = request.app.state.settings
    images: list[bytes | str] = []
    mask: bytes | str | None = None
    fields: dict[str, Any] = {}
    # The context closes the spooled upload files when done.
    async with request.form(
        max_files=32, max_fields=64, max_part_size=settings.max_body_bytes
    ) as form:
        for key, value in form.multi_items():
            if key in IMAGE_FIELDS:
                images.append(await _part(value))
            elif key == "mask":
                mask = await _part(value)
            elif isinstance(value, UploadFile):
                raise invalid(f"{key} must be a text field, not a file", key)
            elif value != "" or key in ("prompt", "negative_prompt"):
                # Empty optional fields (HTML forms send them) mean "not given".
                fields.setdefault(key, value)
    check_names(fields, EditFormFields)
    return form_spec(fields, images, mask)


async def _part(value: UploadFile | str) -> bytes | str:
    return await value.read() if isinstance(value, UploadFile) else value
