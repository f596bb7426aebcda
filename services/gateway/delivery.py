"""Finished images -> what the client asked for: a link in our bucket, or base64.

`url`: each image goes to the storage service (Storage.Put, concurrently up to a byte budget)
and its link is returned; `b64_json`: the bytes are base64-encoded here, at the edge, the one
place the mesh ever makes base64 (and piecewise.py sends it without copying it again).
"""

from __future__ import annotations

import asyncio
import base64
import re
from dataclasses import dataclass

from imagemesh.v1 import common_pb2, storage_pb2

from services.common import requestid
from services.gateway.clients import Backends
from services.gateway.settings import GatewaySettings

_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Uploads run side by side up to this many image bytes at a time: each one in flight holds about
# three copies of its image (its bytes, the request, the request serialised), so four 1328x1328
# uploads at once would hold the gateway's memory at several times the payload.
UPLOAD_BATCH_BYTES = 8 * 1024 * 1024


@dataclass
class Delivered:
    url: str | None = None
    b64_json: str | None = None
    width: int = 0
    height: int = 0
    seed: int = 0
    # Where a `url` image lies in our bucket, and when its presigned link expires (unix s, 0 =
    # never): the task API deletes results by key and re-signs links that outlive their expiry.
    key: str = ""
    url_expires_at: int = 0

    def openai(self) -> dict[str, str]:
        return {"url": self.url} if self.url is not None else {"b64_json": self.b64_json or ""}


def _batches(
    images: list[common_pb2.Image], limit: int
) -> list[list[tuple[int, common_pb2.Image]]]:
    """Consecutive groups of at most `limit` bytes (an image larger than that alone)."""
    batches: list[list[tuple[int, common_pb2.Image]]] = []
    size = limit
    for index, image in enumerate(images):
        bytes_ = image.ByteSize()  # without copying the data out of the message
        if size + bytes_ > limit:
            batches.append([])
            size = 0
        batches[-1].append((index, image))
        size += bytes_
    return batches


class Delivery:
    def __init__(self, settings: GatewaySettings, backends: Backends) -> None:
        self._settings = settings
        self._backends = backends

    async def deliver(
        self, images: list[common_pb2.Image], response_format: str
    ) -> list[Delivered]:
        if response_format == "url":
            delivered: list[Delivered] = []
            for batch in _batches(images, UPLOAD_BATCH_BYTES):
                delivered += await asyncio.gather(*(self.upload(i, image) for i, image in batch))
            return delivered
        return [
            Delivered(
                b64_json=base64.b64encode(image.data).decode("ascii"),
                width=image.width,
                height=image.height,
                seed=image.seed,
            )
            for image in images
        ]

    async def upload(self, index: int, image: common_pb2.Image) -> Delivered:
        """One image to the storage service, as the `index`th of its answer: its link."""
        mime = image.mime_type or "image/png"
        rid = requestid.get_request_id()
        # Names as in the seed's links (<request id>-<n>.png); a client's odd request id is not
        # a safe file name, so it is used only when it is plain.
        stem = rid if _SAFE_ID.match(rid) else requestid.new_request_id()
        stored = await self._backends.unary(
            "storage",
            self._backends.storage.Put,
            storage_pb2.PutRequest(
                data=image.data,
                content_type=mime,
                name=f"{stem}-{index + 1}.{_EXTENSIONS.get(mime, 'png')}",
            ),
            deadline=self._settings.storage_deadline_seconds,
            what="storage",
        )
        return Delivered(
            url=stored.url,
            width=image.width,
            height=image.height,
            seed=image.seed,
            key=stored.key,
            url_expires_at=stored.url_expires_at,
        )
