"""S3 down: UNAVAILABLE naming the endpoint; S3 back: the next call succeeds, no restart needed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from imagemesh.v1 import storage_pb2, storage_pb2_grpc

from services.common.channels import insecure_channel
from services.storage.service import start
from tests.conftest import S3Server, start_s3
from tests.support.ports import free_port
from tests.support.storage import minio_client, png_bytes, read_object, storage_settings

BUCKET = "test-storage-s3-down"


class OwnS3:
    """An S3 server of this test's own, stopped and started again on the same port and data
    folder."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.server: S3Server | None = None
        self.endpoint = f"127.0.0.1:{self.port}"
        self.access_key, self.secret_key = "imagemesh", "imagemesh-secret"

    def start(self) -> None:
        self.server = start_s3("s3-down", port=self.port, data_dir=self.data_dir)

    def stop(self) -> None:
        if self.server is not None:
            self.server.process.stop()
            self.server = None


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnS3]:
    own = OwnS3(tmp_path_factory.mktemp("s3-down"))
    yield own
    own.stop()


@pytest.fixture(scope="module")
async def stub(s3: OwnS3) -> AsyncIterator[storage_pb2_grpc.StorageStub]:
    # Started while S3 is down: the service must serve anyway and recover on its own.
    service = await start(storage_settings(s3, BUCKET))
    async with insecure_channel(service.address) as channel:
        yield storage_pb2_grpc.StorageStub(channel)
    await service.close(0)


async def _put(stub, seed: int) -> storage_pb2.StoredObject:
    return await stub.Put(
        storage_pb2.PutRequest(data=png_bytes(seed=seed), content_type="image/png")
    )


async def _put_fails_unavailable(stub, s3: OwnS3) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _put(stub, 0)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert err.value.details() == f"object storage unreachable at {s3.endpoint}"


async def test_s3_down_then_back_without_restarting_the_service(stub, s3: OwnS3) -> None:
    await _put_fails_unavailable(stub, s3)  # never up since the service started

    s3.start()
    first = await _put(stub, 1)
    assert read_object(minio_client(s3), BUCKET, first.key) == png_bytes(seed=1)

    s3.stop()
    await _put_fails_unavailable(stub, s3)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Get(storage_pb2.GetRequest(key=first.key))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE

    # Back on the same endpoint with what it stored before: the earlier link reads back, and
    # new uploads go on.
    s3.start()
    earlier = httpx.get(first.url, timeout=30)
    assert earlier.status_code == 200 and earlier.content == png_bytes(seed=1)
    again = await _put(stub, 2)
    assert read_object(minio_client(s3), BUCKET, again.key) == png_bytes(seed=2)
