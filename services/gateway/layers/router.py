"""POST /v1/images/layers: JSON (the image by URL, data URL or base64) or multipart (a file)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from services.gateway.bodies import json_body, read_json
from services.gateway.disconnect import unless_disconnected
from services.gateway.errors import invalid
from services.gateway.images.protocol import OpenAIImagesResponse, openai_answer
from services.gateway.layers.protocol import (
    LayersFields,
    LayersFormRequest,
    LayersJsonRequest,
    LayersSpec,
    form_spec,
    json_spec,
)
from services.gateway.layers.serving import LayersService
from services.gateway.misspellings import check_names
from services.gateway.piecewise import PiecewiseJSONResponse
from services.gateway.validation import parse

router = APIRouter(tags=["images"])
BODY_MODELS = (LayersJsonRequest, LayersFormRequest)


@router.post(
    "/v1/images/layers",
    summary="Split an image into RGBA layers (Qwen-Image-Layered): JSON or multipart",
    openapi_extra=json_body(LayersJsonRequest, multipart=LayersFormRequest),
    response_model=OpenAIImagesResponse,
)
async def layers(request: Request) -> Response:
    service: LayersService = request.app.state.layers
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        spec = await _form(request)
    else:
        body = await read_json(request)
        check_names(body, LayersJsonRequest)
        spec = json_spec(parse(LayersJsonRequest, body))
    outcome = await unless_disconnected(request, service.split(spec))
    return PiecewiseJSONResponse(
        openai_answer(outcome), headers={"Server-Timing": outcome.server_timing()}
    )


async def _form(request: Request) -> LayersSpec:
    settings = request.app.state.settings
    image: bytes | str | None = None
    fields: dict[str, Any] = {}
    async with request.form(
        max_files=4, max_fields=32, max_part_size=settings.max_body_bytes
    ) as form:
        for key, value in form.multi_items():
            if key == "image":
                if image is not None:
                    raise invalid("image: one image per request (got several)", "image")
                image = await value.read() if isinstance(value, UploadFile) else value
            elif isinstance(value, UploadFile):
                raise invalid(f"{key} must be a text field, not a file", key)
            elif value != "":
                fields.setdefault(key, value)
    check_names(fields, LayersFields, also=("image",))
    return form_spec(fields, image)
