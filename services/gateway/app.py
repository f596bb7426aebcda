"""The gateway's FastAPI application: `build_app(settings)`.

The lifespan opens one gRPC channel per backend and builds the serving objects on `app.state`
(routes take them from there); middleware adds the request id, API keys, the body cap, the
body-read timeout and CORS; `errors.install` makes every failure an envelope. `/docs` shows every
accepted body shape (`apidoc`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from services.common import tracing
from services.gateway import apidoc, errors, page, probes
from services.gateway.catalog import Catalog
from services.gateway.chat.protocol import ChatCompletionRequest
from services.gateway.chat.router import router as chat_router
from services.gateway.chat.serving import ChatService
from services.gateway.clients import Backends
from services.gateway.delivery import Delivery
from services.gateway.edits.router import BODY_MODELS as EDIT_MODELS
from services.gateway.edits.router import router as edits_router
from services.gateway.edits.serving import ImageEditService
from services.gateway.images.router import BODY_MODELS as IMAGE_MODELS
from services.gateway.images.router import router as images_router
from services.gateway.images.serving import ImageGenerationService
from services.gateway.layers.router import BODY_MODELS as LAYERS_MODELS
from services.gateway.layers.router import router as layers_router
from services.gateway.layers.serving import LayersService
from services.gateway.middleware import ApiKeys, BodyLimit, RequestContext
from services.gateway.model_list.router import router as models_router
from services.gateway.model_list.serving import ModelListService
from services.gateway.settings import GatewaySettings
from services.gateway.slowclients import BodyTimeout
from services.gateway.sources import ImageSources
from services.gateway.tasks.client import TasksClient
from services.gateway.tasks.prepare import TaskPreparer
from services.gateway.tasks.router import BODY_MODELS as TASK_MODELS
from services.gateway.tasks.router import router as tasks_router

DESCRIPTION = """OpenAI- and DashScope-style REST over the imagemesh gRPC services.

Every JSON answer carries `code` (0 = success, else the HTTP status), `message` and `request_id`
(also the `X-Request-ID` header). Errors add `error: {message, type, param}`."""


def build_app(settings: GatewaySettings, catalog: Catalog | None = None) -> FastAPI:
    catalog = (catalog or Catalog.load(settings.catalog_path)).deployed(settings.model_servers)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backends = Backends(settings)
        sources = ImageSources(settings, backends)
        delivery = Delivery(settings, backends)
        app.state.settings = settings
        app.state.catalog = catalog
        app.state.backends = backends
        app.state.images = ImageGenerationService(settings, catalog, backends, delivery, sources)
        app.state.edits = ImageEditService(settings, catalog, backends, sources, delivery)
        app.state.layers = LayersService(settings, catalog, backends, sources, delivery)
        app.state.chat = ChatService(settings, catalog, backends)
        app.state.models = ModelListService(settings, catalog, backends)
        app.state.tasks = TasksClient(settings, backends, TaskPreparer(settings, catalog), sources)
        try:
            yield
        finally:
            await sources.close()
            await backends.close()

    app = FastAPI(
        title="imagemesh gateway",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    errors.install(app)
    for router in (
        images_router,
        edits_router,
        layers_router,
        chat_router,
        models_router,
        tasks_router,
        probes.router,
    ):
        app.include_router(router)
    apidoc.install(
        app,
        [*IMAGE_MODELS, *EDIT_MODELS, *LAYERS_MODELS, ChatCompletionRequest, *TASK_MODELS],
        catalog,
    )
    open_paths = list(settings.open_paths)
    if settings.page:
        page.install(app)
        if "/" in open_paths:
            open_paths += page.PATHS  # the page comes with its files

    # Added last = outermost: the request id wraps everything (even a 401 or 413 carries it),
    # and CORS wraps the key check, so a browser can read a 401 too.
    app.add_middleware(
        BodyTimeout,
        idle_seconds=settings.body_idle_seconds,
        total_seconds=settings.body_timeout_seconds,
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(ApiKeys, keys=settings.api_keys, open_paths=open_paths)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(RequestContext)
    tracing.instrument_app(app)  # only with OTEL_EXPORTER_OTLP_ENDPOINT set
    return app
