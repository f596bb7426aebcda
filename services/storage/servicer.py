"""The gRPC face of the storage service: proto in, plain calls to `Uploader` / `Fetcher`, proto out.

Put and PutStream's messages are decoded by `services.storage.wire` (register with
`add_storage_servicer`): a Put arrives as `PutFields`, a PutStream chunk as its bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from imagemesh.v1 import storage_pb2, storage_pb2_grpc

from services.common.errors import InvalidArgument
from services.storage.fetcher import Fetcher
from services.storage.links import LinkRefused
from services.storage.uploader import Stored, Uploader
from services.storage.wire import PutFields

# Trailing metadata that tells the gateway what a status means here (services/gateway/errors).
REASON_KEY = "imagemesh-reason"
SERVICE_NAME = storage_pb2.DESCRIPTOR.services_by_name["Storage"].full_name


def _stored(obj: Stored) -> storage_pb2.StoredObject:
    return storage_pb2.StoredObject(
        bucket=obj.bucket,
        key=obj.key,
        url=obj.url,
        content_type=obj.content_type,
        size=obj.size,
        etag=obj.etag,
        url_expires_at=obj.url_expires_at,
    )


async def _chunks(
    requests: AsyncIterator[bytes | storage_pb2.PutStreamRequest],
) -> AsyncIterator[bytes]:
    # A chunk arrives as its bytes (services/storage/wire.py), anything else as the message.
    async for message in requests:
        if not isinstance(message, bytes):
            raise InvalidArgument("PutStream: only the first message may be a header")
        yield message


class StorageServicer(storage_pb2_grpc.StorageServicer):
    def __init__(self, uploader: Uploader, fetcher: Fetcher) -> None:
        self._uploader = uploader
        self._fetcher = fetcher

    async def Put(self, request: PutFields, context: grpc.aio.ServicerContext):
        stored = await self._uploader.put(
            request.data, request.content_type, request.name, request.prefix
        )
        return _stored(stored)

    async def PutStream(self, request_iterator, context: grpc.aio.ServicerContext):
        requests = aiter(request_iterator)
        first = await anext(requests, None)
        if (
            not isinstance(first, storage_pb2.PutStreamRequest)
            or first.WhichOneof("part") != "header"
        ):
            raise InvalidArgument("PutStream: send a header first (content_type, name...)")
        header = first.header
        stored = await self._uploader.put_stream(
            header.content_type, header.name, header.prefix, header.size, _chunks(requests)
        )
        return _stored(stored)

    async def Get(self, request: storage_pb2.GetRequest, context: grpc.aio.ServicerContext):
        try:
            got = await self._uploader.get(request.key, request.url)
        except LinkRefused as exc:
            await context.abort(exc.code, exc.message, ((REASON_KEY, exc.reason),))
            raise  # abort raises; this line only tells the type checker
        return storage_pb2.GetResponse(data=got.data, content_type=got.content_type, size=got.size)

    async def Presign(self, request: storage_pb2.PresignRequest, context: grpc.aio.ServicerContext):
        link = await self._uploader.presign(request.key, request.expires_seconds)
        return storage_pb2.PresignResponse(url=link.url, expires_at=link.expires_at)

    async def Fetch(self, request: storage_pb2.FetchRequest, context: grpc.aio.ServicerContext):
        return _stored(await self._fetcher.fetch(request.url, request.name, request.prefix))

    async def Delete(self, request: storage_pb2.DeleteRequest, context: grpc.aio.ServicerContext):
        return storage_pb2.DeleteResponse(deleted=await self._uploader.delete(list(request.keys)))
