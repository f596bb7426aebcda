"""POST /v1/images/generations: OpenAI- or DashScope-shaped, answered in the same shape; an
OpenAI-shaped body with `stream: true` is answered with server-sent events (`sse.py`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.gateway.bodies import json_body, read_json
from services.gateway.disconnect import unless_disconnected
from services.gateway.errors import invalid
from services.gateway.images.protocol import (
    DashScopeImageRequest,
    DashScopeImagesResponse,
    DashScopeParameters,
    OpenAIImageRequest,
    OpenAIImagesResponse,
    dashscope_answer,
    dashscope_spec,
    openai_answer,
    openai_spec,
)
from services.gateway.images.serving import ImageGenerationService
from services.gateway.misspellings import check_names
from services.gateway.sse import OPENAPI, respond
from services.gateway.streamed_json import json_answer
from services.gateway.validation import parse

router = APIRouter(tags=["images"])
BODY_MODELS = (OpenAIImageRequest, DashScopeImageRequest)
# An input image belongs to the edits endpoint (the OpenAI SDK's images.edit): said, not ignored.
EDIT_FIELDS = ("image", "images", "mask", "strength")


@router.post(
    "/v1/images/generations",
    summary="Generate images (OpenAI shape, or DashScope shape when the body has `input`)",
    openapi_extra=json_body(*BODY_MODELS),
    response_model=OpenAIImagesResponse | DashScopeImagesResponse,
    responses=OPENAPI,
)
async def generations(request: Request) -> Response:
    body = await read_json(request)
    service: ImageGenerationService = request.app.state.images
    if "input" in body:
        check_names(body.get("parameters"), DashScopeParameters, "parameters.")
        spec = dashscope_spec(parse(DashScopeImageRequest, body))
        answer = await unless_disconnected(request, service.answer(spec))
        return json_answer(answer, dashscope_answer)
    check_names(body, OpenAIImageRequest)
    if given := next((name for name in EDIT_FIELDS if name in body), None):
        raise invalid(
            f"{given} belongs to POST /v1/images/edits (an input image: img2img on qwen-image, "
            "inpainting with a mask); /v1/images/generations makes images from text",
            given,
        )
    spec = openai_spec(parse(OpenAIImageRequest, body))
    if spec.stream:
        return await respond(request, "image_generation", service.stream(spec))
    answer = await unless_disconnected(request, service.answer(spec))
    return json_answer(answer, openai_answer)
