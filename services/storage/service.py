"""Builds and runs the storage service: settings in, a serving `MeshServer` out.

Startup tolerates S3 being down: the service serves at once, the bucket is created when S3
answers (at start when it can, otherwise before the first write), and each call that needs S3
while it is down answers UNAVAILABLE with the endpoint, so the mesh recovers without a restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from services.common.errors import ServiceError
from services.common.fetch import Downloader
from services.common.logs import configure_logging
from services.common.memory import keep_large_buffers
from services.common.server import MeshServer
from services.storage.fetcher import Fetcher, fetch_rules
from services.storage.object_store import ObjectStore
from services.storage.servicer import SERVICE_NAME, StorageServicer
from services.storage.settings import StorageSettings
from services.storage.uploader import Uploader
from services.storage.wire import add_storage_servicer

log = logging.getLogger("imagemesh.storage")


@dataclass
class StorageService:
    server: MeshServer
    store: ObjectStore
    uploader: Uploader
    fetcher: Fetcher

    @property
    def address(self) -> str:
        return self.server.address

    async def close(self, grace: float | None = None) -> None:
        await self.server.stop(grace)
        await self.fetcher.close()
        await self.store.close()


async def start(settings: StorageSettings) -> StorageService:
    """Listens and reports SERVING; the caller stops it with `close()`."""
    store = ObjectStore(settings)
    uploader = Uploader(settings, store)
    fetcher = Fetcher(Downloader(fetch_rules(settings)), uploader)
    # Puts are not failed over on the handler's say-so: the request id goes back with the answer.
    server = MeshServer(settings, [SERVICE_NAME], announce_calls=False)
    add_storage_servicer(StorageServicer(uploader, fetcher), server.grpc)
    await server.start()
    try:
        await store.ensure_bucket()
    except ServiceError as exc:
        log.warning("%s; the bucket will be created on first use", exc.message)
    await server.set_serving()
    return StorageService(server, store, uploader, fetcher)


async def serve(settings: StorageSettings) -> None:
    """Serves until SIGTERM / SIGINT, then drains in-flight calls and exits."""
    configure_logging(settings.log_level)
    keep_large_buffers()
    service = await start(settings)
    log.info(
        "bucket %s at %s, keys under %s/", settings.bucket, settings.s3_url, settings.upload_dir
    )
    await service.server.wait_for_shutdown_signal()
    await service.fetcher.close()
    await service.store.close()
