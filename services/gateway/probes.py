"""Process probes and metrics: /healthz (the process answers), /readyz (every required backend's
gRPC health is SERVING; 503 naming the ones that are not), /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from services.gateway.clients import Backends
from services.gateway.errors import ApiError, error_body

router = APIRouter(tags=["probes"])


@router.get("/healthz", summary="The gateway process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz", summary="Every required backend answers SERVING (503 lists those that do not)"
)
async def readyz(request: Request) -> JSONResponse:
    backends: Backends = request.app.state.backends
    statuses = await backends.healths(list(request.app.state.settings.ready_backends))
    down = {name: status for name, status in statuses.items() if status != "SERVING"}
    if down:
        listed = ", ".join(f"{name} is {status}" for name, status in down.items())
        body = error_body(ApiError(503, f"not ready: {listed}"))
        body["backends"] = statuses
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ready", "backends": statuses})


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
