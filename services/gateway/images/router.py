"""POST /v1/images/generations: OpenAI- or DashScope-shaped, answered in the same shape."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.gateway.bodies import json_body, read_json
from services.gateway.images.protocol import (
    DashScopeImageRequest,
    DashScopeImagesResponse,
    OpenAIImageRequest,
    OpenAIImagesResponse,
    dashscope_answer,
    dashscope_spec,
    openai_answer,
    openai_spec,
)
from services.gateway.images.serving import ImageGenerationService, Outcome
from services.gateway.validation import parse

router = APIRouter(tags=["images"])
BODY_MODELS = (OpenAIImageRequest, DashScopeImageRequest)


@router.post(
    "/v1/images/generations",
    summary="Generate images (OpenAI shape, or DashScope shape when the body has `input`)",
    openapi_extra=json_body(*BODY_MODELS),
    response_model=OpenAIImagesResponse | DashScopeImagesResponse,
)
async def generations(request: Request) -> JSONResponse:
    body = await read_json(request)
    service: ImageGenerationService = request.app.state.images
    if "input" in body:
        outcome = await service.generate(dashscope_spec(parse(DashScopeImageRequest, body)))
        return JSONResponse(dashscope_answer(outcome), headers=_timing(outcome))
    outcome = await service.generate(openai_spec(parse(OpenAIImageRequest, body)))
    return JSONResponse(openai_answer(outcome), headers=_timing(outcome))


def _timing(outcome: Outcome) -> dict[str, str]:
    """Where the time went (Server-Timing: shown by browsers' dev tools, read by bench/)."""
    return {"Server-Timing": outcome.server_timing()}
