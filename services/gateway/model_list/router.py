"""GET /v1/models: the model catalogue, seed-004 and OpenAI fields together, with readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from services.gateway.envelope import success
from services.gateway.model_list.serving import ModelListService

router = APIRouter(tags=["models"])


@router.get("/v1/models", summary="List every model, where to call it, and whether it is ready")
async def list_models(request: Request) -> dict[str, Any]:
    service: ModelListService = request.app.state.models
    return success(await service.list(str(request.base_url)))
