"""Builds and runs the task service: settings in, a serving `MeshServer` with its workers out.

The database is opened (the table created when missing) before the server reports SERVING, so a
replica that cannot reach its database never takes traffic; then the workers start, and run
first whatever was left queued before a restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from imagemesh.v1 import tasks_pb2_grpc
from sqlalchemy.exc import SQLAlchemyError

from services.common.logs import configure_logging
from services.common.server import MeshServer
from services.tasks.backends import Backends
from services.tasks.database import redacted
from services.tasks.retention import StorageObjects
from services.tasks.runner import TaskRunner
from services.tasks.servicer import SERVICE_NAME, TasksServicer
from services.tasks.serving import TaskService
from services.tasks.settings import TasksSettings
from services.tasks.store import TaskStore
from services.tasks.worker import Runner

log = logging.getLogger("imagemesh.tasks")


@dataclass
class RunningTasks:
    server: MeshServer
    service: TaskService
    backends: Backends

    @property
    def address(self) -> str:
        return self.server.address

    async def close(self, grace: float | None = None) -> None:
        await self.server.stop(grace)
        await self.service.close()
        await self.backends.close()


async def start(settings: TasksSettings, runner: Runner | None = None) -> RunningTasks:
    """Listens and reports SERVING; `runner` replaces the real one (tests). Stop with close()."""
    backends = Backends(settings)
    objects = StorageObjects(backends.storage, settings.storage_deadline_seconds)
    try:
        store = await TaskStore.open(settings.database_url)
    except (OSError, SQLAlchemyError) as exc:
        await backends.close()
        # One line for the operator (the orchestrator restarts us with backoff), not a traceback.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SystemExit(
            f"tasks: cannot open the task database {redacted(settings.database_url)}: {reason}"
        ) from None
    service = TaskService(
        settings,
        store,
        runner or TaskRunner(backends),
        delete_objects=objects.delete,
        presign=objects.presign,
    )
    server = MeshServer(settings, [SERVICE_NAME])
    tasks_pb2_grpc.add_TasksServicer_to_server(TasksServicer(service), server.grpc)
    await server.start()
    await service.start()
    await server.set_serving()
    log.info(
        "database %s, %d workers as %s",
        redacted(settings.database_url),
        settings.workers,
        service.worker.worker_id,
    )
    return RunningTasks(server, service, backends)


async def serve(settings: TasksSettings) -> None:
    """Serves until SIGTERM / SIGINT; running tasks get the worker grace, then go back queued."""
    configure_logging(settings.log_level)
    running = await start(settings)
    await running.server.wait_for_shutdown_signal()
    await running.service.close()
    await running.backends.close()
