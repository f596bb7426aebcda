"""Results are kept for a while, then deleted together with their images.

A finished task (succeeded, failed or canceled) gets `expires_at = finished_at + retention`. The
`Retention` sweeper, run by every tasks replica, takes expired tasks in batches, deletes their
images from the bucket through the storage service (`Storage.Delete`, by key), and only then
deletes the rows, so an image is never orphaned: when storage is down the rows stay and the next
sweep tries again. Two replicas sweeping the same batch is harmless (S3 deletes are idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from imagemesh.v1 import storage_pb2, storage_pb2_grpc

from services.common import requestid
from services.tasks.store import TaskStore
from services.tasks.worker import Discard

log = logging.getLogger("imagemesh.tasks")

# The storage service takes at most this many keys per Delete call.
DELETE_BATCH = 1000


class StorageObjects:
    """The task layer's use of the storage service: delete images by key, sign links again."""

    def __init__(self, stub: storage_pb2_grpc.StorageStub, deadline_seconds: float = 30.0) -> None:
        self._stub = stub
        self._deadline = deadline_seconds

    async def delete(self, keys: Sequence[str]) -> int:
        deleted = 0
        for start in range(0, len(keys), DELETE_BATCH):
            response = await self._stub.Delete(
                storage_pb2.DeleteRequest(keys=list(keys[start : start + DELETE_BATCH])),
                timeout=self._deadline,
                metadata=requestid.outgoing_metadata(),
            )
            deleted += response.deleted
        return deleted

    async def presign(self, key: str) -> tuple[str, int]:
        """A fresh link to `key` and its expiry (unix seconds)."""
        response = await self._stub.Presign(
            storage_pb2.PresignRequest(key=key),
            timeout=self._deadline,
            metadata=requestid.outgoing_metadata(),
        )
        return response.url, int(response.expires_at)


class Retention:
    def __init__(
        self,
        store: TaskStore,
        delete_objects: Discard | None,
        *,
        interval_seconds: float = 60.0,
        batch: int = 100,
    ) -> None:
        self.store = store
        self.delete_objects = delete_objects
        self.interval_seconds = interval_seconds
        self.batch = batch
        self._loop: asyncio.Task[None] | None = None

    async def sweep(self) -> int:
        """Deletes every expired task and its images; returns how many tasks were deleted."""
        total = 0
        while True:
            expired = await self.store.expired(self.batch)
            if not expired:
                return total
            keys = [key for task in expired if task.output for key in task.output.keys]
            if keys and self.delete_objects is not None:
                # Raises when storage is down: the rows stay, the next sweep retries.
                await self.delete_objects(keys)
            total += await self.store.delete([task.id for task in expired])
            log.info("retention: deleted %d expired tasks and %d images", len(expired), len(keys))
            if len(expired) < self.batch:
                return total

    async def start(self) -> None:
        self._loop = asyncio.create_task(self._run(), name="task-retention")

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as exc:  # noqa: BLE001 - retried next interval: the sweeper never dies
                log.warning(
                    "retention sweep failed (%s); retrying in %.0f s", exc, self.interval_seconds
                )
            await asyncio.sleep(self.interval_seconds)
