"""Starting and stopping the task service inside the gateway's lifespan.

`open_tasks` builds the service on the gateway's own catalogue, channels and serving objects, opens
the database (creating the table when missing) and starts the workers, which first run whatever
was left queued before a restart. `TaskSettings` are read from `GATEWAY_*` variables unless given.
"""

from __future__ import annotations

import logging

from services.gateway.catalog import Catalog
from services.gateway.clients import Backends
from services.gateway.delivery import Delivery
from services.gateway.images.serving import ImageGenerationService
from services.gateway.settings import GatewaySettings
from services.gateway.tasks.backend import GatewayTaskBackend
from services.gateway.tasks.database import redacted
from services.gateway.tasks.retention import StorageObjects
from services.gateway.tasks.serving import TaskService
from services.gateway.tasks.settings import TaskSettings

log = logging.getLogger("imagemesh.gateway.tasks")


async def open_tasks(
    settings: GatewaySettings,
    catalog: Catalog,
    backends: Backends,
    images: ImageGenerationService,
    delivery: Delivery,
    task_settings: TaskSettings | None = None,
) -> TaskService:
    task_settings = task_settings or TaskSettings()
    backend = GatewayTaskBackend(settings, catalog, backends, images, delivery)
    objects = StorageObjects(backends.storage, settings.storage_deadline_seconds)
    service = await TaskService.open(
        task_settings, backend, delete_objects=objects.delete, presign=objects.presign
    )
    await service.start()
    log.info(
        "tasks: database %s, %d workers as %s",
        redacted(task_settings.database_url),
        task_settings.task_workers,
        service.worker.worker_id,
    )
    return service
