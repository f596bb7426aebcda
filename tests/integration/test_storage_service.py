"""The storage service over gRPC against the real S3 server: what a caller gets, what the bucket holds."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from imagemesh.v1 import storage_pb2, storage_pb2_grpc
from minio import Minio

from services.common.channels import insecure_channel
from services.common.settings import MIB
from services.storage.service import StorageService, start
from tests.support.storage import (
    bucket_keys,
    minio_client,
    png_bytes,
    read_object,
    storage_settings,
)
from tests.support.waiting import eventually

BUCKET = "test-storage-service"
KEY = re.compile(r"imagemesh/\d{4}-\d{2}-\d{2}/\d{13}/")


@pytest.fixture(scope="module")
async def service(s3_server) -> AsyncIterator[StorageService]:
    service = await start(storage_settings(s3_server, BUCKET))
    yield service
    await service.close(0)


@pytest.fixture(scope="module")
async def stub(service: StorageService) -> AsyncIterator[storage_pb2_grpc.StorageStub]:
    async with insecure_channel(service.address) as channel:
        yield storage_pb2_grpc.StorageStub(channel)


@pytest.fixture(scope="module")
def s3(s3_server) -> Minio:
    return minio_client(s3_server)


async def test_a_png_lands_in_the_bucket_and_its_link_gives_it_back(stub, s3: Minio) -> None:
    png = png_bytes(64, 48)
    stored = await stub.Put(
        storage_pb2.PutRequest(data=png, content_type="image/png", name="cat.png")
    )

    assert KEY.match(stored.key) and stored.key.endswith("/cat.png")
    assert (stored.bucket, stored.size, stored.content_type) == (BUCKET, len(png), "image/png")
    info = s3.stat_object(BUCKET, stored.key)
    assert info.content_type == "image/png"
    assert read_object(s3, BUCKET, stored.key) == png
    download = httpx.get(stored.url)
    assert download.status_code == 200 and download.content == png
    assert stored.url_expires_at > 0


async def test_a_prefix_replaces_the_upload_dir_and_a_name_is_made_when_missing(stub) -> None:
    stored = await stub.Put(
        storage_pb2.PutRequest(data=png_bytes(), content_type="image/jpeg", prefix="users/42/")
    )
    assert re.fullmatch(r"users/42/\d{4}-\d{2}-\d{2}/\d{13}/[0-9a-f]{32}\.jpg", stored.key)


async def _put_stream(stub, header: storage_pb2.PutHeader, data: bytes, chunk: int = MIB):
    async def requests():
        yield storage_pb2.PutStreamRequest(header=header)
        for offset in range(0, len(data), chunk):
            yield storage_pb2.PutStreamRequest(chunk=data[offset : offset + chunk])

    return await stub.PutStream(requests())


async def test_20_mb_through_put_stream_round_trips_intact(stub, s3: Minio) -> None:
    data = os.urandom(20 * MIB)
    header = storage_pb2.PutHeader(content_type="image/png", name="big.png", size=len(data))
    stored = await _put_stream(stub, header, data)

    assert stored.size == len(data)
    got = await stub.Get(storage_pb2.GetRequest(key=stored.key))
    assert got.data == data and got.content_type == "image/png"
    assert httpx.get(stored.url).content == data
    assert s3.stat_object(BUCKET, stored.key).size == len(data)


async def test_put_stream_with_a_wrong_size_writes_nothing(stub, s3: Minio) -> None:
    before = bucket_keys(s3, BUCKET)
    # 12 MiB declared, 10 sent: the first 8 MiB part is already uploaded when the count falls
    # short, so this proves the multipart upload is aborted.
    header = storage_pb2.PutHeader(content_type="image/png", size=12 * MIB)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _put_stream(stub, header, os.urandom(10 * MIB))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "12582912 bytes declared, 10485760 sent" in err.value.details()
    assert bucket_keys(s3, BUCKET) == before


async def test_a_cancelled_put_stream_aborts_its_upload(stub, s3: Minio) -> None:
    before = bucket_keys(s3, BUCKET)
    hold = asyncio.Event()

    async def requests():
        yield storage_pb2.PutStreamRequest(
            header=storage_pb2.PutHeader(
                content_type="image/png", prefix="cancelled", size=20 * MIB
            )
        )
        for _ in range(10):  # past the first 8 MiB part: the multipart upload has begun
            yield storage_pb2.PutStreamRequest(chunk=os.urandom(MIB))
        await hold.wait()  # and the stream never ends

    async def uploads() -> int:
        # The SDK lists multipart uploads in progress only through this helper (blocking I/O).
        listed = await asyncio.to_thread(s3._list_multipart_uploads, BUCKET, prefix="cancelled/")
        return len(listed.uploads)

    async def uploads_are(count: int) -> bool:
        return await uploads() == count

    call = stub.PutStream(requests())
    try:
        await eventually(lambda: uploads_are(1), 20, "the multipart upload")
        call.cancel()
        await eventually(lambda: uploads_are(0), 20, "the upload aborted")
    finally:
        hold.set()
    assert bucket_keys(s3, BUCKET) == before


@pytest.mark.parametrize(
    ("header", "chunks", "says"),
    [
        (storage_pb2.PutHeader(content_type="image/png", size=1), [], "no data after the header"),
        (storage_pb2.PutHeader(content_type="image/png"), [b"x"], "header.size: required"),
        (storage_pb2.PutHeader(content_type="text/plain", size=1), [b"x"], "'text/plain'"),
        (storage_pb2.PutHeader(content_type="image/png", name="../x.png", size=1), [b"x"], "'..'"),
        (None, [b"x"], "send a header first"),
    ],
)
async def test_bad_put_streams_are_refused(stub, s3: Minio, header, chunks, says: str) -> None:
    before = bucket_keys(s3, BUCKET)

    async def requests():
        if header is not None:
            yield storage_pb2.PutStreamRequest(header=header)
        for chunk in chunks:
            yield storage_pb2.PutStreamRequest(chunk=chunk)

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.PutStream(requests())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert says in err.value.details()
    assert bucket_keys(s3, BUCKET) == before


@pytest.mark.parametrize(
    ("request_", "says"),
    [
        (storage_pb2.PutRequest(data=b"", content_type="image/png"), "data: empty"),
        (
            storage_pb2.PutRequest(data=b"GIF", content_type="text/html"),
            "content_type: 'text/html' is not accepted",
        ),
        (
            storage_pb2.PutRequest(data=b"GIF", content_type=""),
            "content_type: empty is not accepted",
        ),
        (
            storage_pb2.PutRequest(data=b"x", content_type="image/png", name="../../etc/x.png"),
            "holds '..'",
        ),
        (
            storage_pb2.PutRequest(data=b"x", content_type="image/png", name="/x.png"),
            "starts with '/'",
        ),
        (
            storage_pb2.PutRequest(data=b"x", content_type="image/png", prefix="/root"),
            "starts with '/'",
        ),
        (
            storage_pb2.PutRequest(data=b"x", content_type="image/png", prefix="a/../.."),
            "holds '..'",
        ),
    ],
)
async def test_bad_puts_are_refused_and_write_nothing(stub, s3: Minio, request_, says: str) -> None:
    before = bucket_keys(s3, BUCKET)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Put(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert says in err.value.details()
    assert bucket_keys(s3, BUCKET) == before


async def test_presign_links_an_existing_object_with_the_asked_expiry(stub) -> None:
    png = png_bytes(seed=3)
    stored = await stub.Put(storage_pb2.PutRequest(data=png, content_type="image/png"))
    link = await stub.Presign(storage_pb2.PresignRequest(key=stored.key, expires_seconds=120))
    assert "X-Amz-Expires=120" in link.url
    assert httpx.get(link.url).content == png


async def test_missing_keys_are_not_found(stub) -> None:
    for call in (
        stub.Get(storage_pb2.GetRequest(key="imagemesh/none.png")),
        stub.Presign(storage_pb2.PresignRequest(key="imagemesh/none.png")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert "imagemesh/none.png" in err.value.details()


async def test_delete_removes_the_objects(stub, s3: Minio) -> None:
    keys = [
        (
            await stub.Put(storage_pb2.PutRequest(data=png_bytes(seed=i), content_type="image/png"))
        ).key
        for i in range(2)
    ]
    answer = await stub.Delete(storage_pb2.DeleteRequest(keys=keys))
    assert answer.deleted == 2
    assert not set(keys) & bucket_keys(s3, BUCKET)


async def test_delete_refuses_bad_keys(stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Delete(storage_pb2.DeleteRequest(keys=["../x"]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
