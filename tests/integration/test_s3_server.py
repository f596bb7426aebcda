"""The embedded S3 server (scripts/s3_server.py) as the storage service and its link holders see it:
objects survive a crash and a restart, and only correctly signed, unexpired requests are served."""

from __future__ import annotations

import datetime
import io
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from imagemesh.v1 import storage_pb2, storage_pb2_grpc
from minio import Minio
from minio.error import S3Error

from services.common.channels import insecure_channel
from services.storage.service import start
from tests.conftest import S3Server, start_s3
from tests.support.storage import minio_client, png_bytes, read_object, storage_settings
from tests.support.waiting import wait_until

BUCKET = "test-s3-server"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A server of this module's own: these tests kill and restart it."""
    server = start_s3("s3-own", data_dir=tmp_path_factory.mktemp("s3-own"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def stub(s3: S3Server) -> AsyncIterator[storage_pb2_grpc.StorageStub]:
    service = await start(storage_settings(s3, BUCKET))
    async with insecure_channel(service.address) as channel:
        yield storage_pb2_grpc.StorageStub(channel)
    await service.close(0)


async def _put(stub: storage_pb2_grpc.StorageStub, seed: int) -> storage_pb2.StoredObject:
    return await stub.Put(
        storage_pb2.PutRequest(data=png_bytes(seed=seed), content_type="image/png")
    )


def _status(url: str) -> httpx.Response:
    return httpx.get(url, timeout=30)


async def test_a_killed_and_restarted_server_serves_every_earlier_link(stub, s3: S3Server) -> None:
    links = {seed: (await _put(stub, seed)).url for seed in range(3)}
    s3.process.kill()  # kill -9: nothing flushed on the way out
    s3.restart()
    for seed, link in links.items():
        answer = _status(link)
        assert answer.status_code == 200, answer.text
        assert answer.content == png_bytes(seed=seed)

    # A clean stop and start again: still there, and uploads go on.
    s3.process.stop()
    s3.restart()
    assert _status(links[0]).content == png_bytes(seed=0)
    later = await _put(stub, 9)
    assert read_object(minio_client(s3), BUCKET, later.key) == png_bytes(seed=9)


async def test_a_restart_keeps_its_internal_ports(s3: S3Server) -> None:
    ports_file = s3.data_dir / "imagemesh-ports.json"
    before = json.loads(ports_file.read_text())
    s3.process.kill()
    s3.restart()
    assert json.loads(ports_file.read_text()) == before
    assert s3.port not in before.values()


def test_two_servers_side_by_side_each_serve_their_own_objects(
    s3: S3Server, tmp_path: Path
) -> None:
    # As `make run`'s server and a test session's do: no port of one is taken by the other
    # (weed's fixed defaults, such as the admin server's 23646, would be).
    second = start_s3("s3-second", data_dir=tmp_path)
    try:
        for server, data in ((s3, b"first"), (second, b"second")):
            client = minio_client(server)
            if not client.bucket_exists("side-by-side"):
                client.make_bucket("side-by-side")
            client.put_object("side-by-side", "k", io.BytesIO(data), len(data))
        assert read_object(minio_client(s3), "side-by-side", "k") == b"first"
        assert read_object(minio_client(second), "side-by-side", "k") == b"second"
        ports = [
            set(json.loads((server.data_dir / "imagemesh-ports.json").read_text()).values())
            | {server.port}
            for server in (s3, second)
        ]
        assert not ports[0] & ports[1]
    finally:
        second.stop()


async def test_a_forged_signature_is_refused(stub, s3: S3Server) -> None:
    link = (await _put(stub, 20)).url
    assert _status(link).status_code == 200
    signature = httpx.URL(link).params["X-Amz-Signature"]
    forged = link.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])
    refused = _status(forged)
    assert refused.status_code == 403
    assert "SignatureDoesNotMatch" in refused.text

    wrong_secret = Minio(
        s3.endpoint,
        access_key=s3.access_key,
        secret_key="not-the-secret",
        secure=False,
        region="us-east-1",
    )
    with pytest.raises(S3Error) as err:
        next(iter(wrong_secret.list_objects(BUCKET)))
    assert err.value.code == "SignatureDoesNotMatch"
    assert _status(wrong_secret.presigned_get_object(BUCKET, "any")).status_code == 403


async def test_a_link_past_its_expiry_is_refused(stub, s3: S3Server) -> None:
    stored = await _put(stub, 30)
    client = minio_client(s3)
    # Signed an hour ago for a minute: past its expiry for sure, however slow this machine is.
    an_hour_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    expired = client.presigned_get_object(
        BUCKET, stored.key, expires=datetime.timedelta(minutes=1), request_date=an_hour_ago
    )
    refused = _status(expired)
    assert refused.status_code == 403
    assert "expired" in refused.text.lower()

    # The storage service's own one-second link: refused once that second has passed, while a
    # link presigned later for longer serves the same object.
    short = await stub.Presign(storage_pb2.PresignRequest(key=stored.key, expires_seconds=1))
    wait_until(lambda: _status(short.url).status_code == 403, 30, "the 1 s link to expire")
    fresh = await stub.Presign(storage_pb2.PresignRequest(key=stored.key, expires_seconds=600))
    assert _status(fresh.url).content == png_bytes(seed=30)


async def test_anonymous_requests_are_refused(stub, s3: S3Server) -> None:
    stored = await _put(stub, 40)
    base = f"http://{s3.endpoint}/{BUCKET}"
    assert httpx.get(f"{base}/{stored.key}", timeout=30).status_code == 403
    assert httpx.get(base, timeout=30).status_code == 403  # listing the bucket
    assert httpx.put(f"{base}/planted.png", content=b"x", timeout=30).status_code == 403
    assert httpx.delete(f"{base}/{stored.key}", timeout=30).status_code == 403
    assert read_object(minio_client(s3), BUCKET, stored.key) == png_bytes(seed=40)
    assert "planted.png" not in {o.object_name for o in minio_client(s3).list_objects(BUCKET)}
