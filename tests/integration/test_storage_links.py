"""Links into our bucket are read by key only when they are ours (issue 19 section 3): Storage.Get
given a link checks it is a presigned GET this service issued and not expired, as S3 would,
against the real S3 server; the gateway answers a refused link with 403.

A link we issued reading back through the gateway (an edit that succeeds) is in
tests/integration/test_fetch_limits.py, beside the expired one.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from imagemesh.v1 import storage_pb2, storage_pb2_grpc

from services.common.channels import insecure_channel
from services.storage.service import StorageService, start
from tests.support.mesh import Mesh
from tests.support.storage import png_bytes, storage_settings

BUCKET = "test-storage-links"
PUBLIC = "https://images.example.test/imagemesh"


@pytest.fixture(scope="module")
async def service(s3_server) -> AsyncIterator[StorageService]:
    service = await start(storage_settings(s3_server, BUCKET))
    yield service
    await service.close(0)


@pytest.fixture(scope="module")
async def stub(service: StorageService) -> AsyncIterator[storage_pb2_grpc.StorageStub]:
    async with insecure_channel(service.address) as channel:
        yield storage_pb2_grpc.StorageStub(channel)


def _with_query(url: str, **changes: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    query.update(changes)
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _one_character_off(url: str) -> str:
    signature = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))["X-Amz-Signature"]
    changed = ("0" if signature[0] != "0" else "1") + signature[1:]
    return _with_query(url, **{"X-Amz-Signature": changed})


def _unsigned(url: str) -> str:
    return urllib.parse.urlsplit(url)._replace(query="").geturl()


async def _refused(stub, key: str, url: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Get(storage_pb2.GetRequest(key=key, url=url))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, caught.value.details()
    assert ("imagemesh-reason", "link-refused") in tuple(caught.value.trailing_metadata() or ())
    return caught.value.details() or ""


async def test_a_link_we_issued_reads_back(stub) -> None:
    png = png_bytes(32, 32, seed=1)
    stored = await stub.Put(storage_pb2.PutRequest(data=png, content_type="image/png"))
    assert "X-Amz-Signature=" in stored.url
    got = await stub.Get(storage_pb2.GetRequest(key=stored.key, url=stored.url))
    assert bytes(got.data) == png
    # A mesh service reading its own object gives no link.
    assert bytes((await stub.Get(storage_pb2.GetRequest(key=stored.key))).data) == png


async def test_a_changed_signature_another_key_or_a_stretched_expiry_is_refused(stub) -> None:
    first = await stub.Put(storage_pb2.PutRequest(data=png_bytes(), content_type="image/png"))
    second = await stub.Put(storage_pb2.PutRequest(data=png_bytes(), content_type="image/png"))
    says = await _refused(stub, first.key, _one_character_off(first.url))
    assert "is not one we issued (its signature does not match)" in says
    # The first object's link does not open the second.
    await _refused(stub, second.key, first.url)
    expires = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(first.url).query))["X-Amz-Expires"]
    longer = _with_query(first.url, **{"X-Amz-Expires": str(int(expires) * 2)})
    assert "is not one we issued" in await _refused(stub, first.key, longer)


async def test_a_link_past_its_expiry_is_refused(stub) -> None:
    stored = await stub.Put(storage_pb2.PutRequest(data=png_bytes(), content_type="image/png"))
    link = await stub.Presign(storage_pb2.PresignRequest(key=stored.key, expires_seconds=60))
    old = _with_query(link.url, **{"X-Amz-Date": "20200101T000000Z"})
    says = await _refused(stub, stored.key, old)
    assert "expired at 2020-01-01 00:01:00 UTC; use a fresh link" in says


async def test_an_unsigned_link_into_a_private_bucket_is_refused(stub) -> None:
    stored = await stub.Put(storage_pb2.PutRequest(data=png_bytes(), content_type="image/png"))
    says = await _refused(stub, stored.key, _unsigned(stored.url))
    assert "is not signed and this bucket is private" in says


async def test_with_a_public_base_url_its_unsigned_links_read_and_others_do_not(s3_server) -> None:
    service = await start(storage_settings(s3_server, BUCKET, public_base_url=PUBLIC))
    try:
        async with insecure_channel(service.address) as channel:
            stub = storage_pb2_grpc.StorageStub(channel)
            png = png_bytes(8, 8, seed=2)
            stored = await stub.Put(storage_pb2.PutRequest(data=png, content_type="image/png"))
            assert stored.url.startswith(PUBLIC + "/") and stored.url_expires_at == 0
            got = await stub.Get(storage_pb2.GetRequest(key=stored.key, url=stored.url))
            assert bytes(got.data) == png
            elsewhere = f"http://{s3_server.endpoint}/{BUCKET}/{stored.key}"
            await _refused(stub, stored.key, elsewhere)
    finally:
        await service.close(0)


@pytest.fixture(scope="module")
async def mesh_link(mesh: Mesh) -> str:
    """A link the mesh's own storage service issued for a PNG in its bucket."""
    async with insecure_channel(mesh.targets["storage"]) as channel:
        stub = storage_pb2_grpc.StorageStub(channel)
        stored = await stub.Put(storage_pb2.PutRequest(data=png_bytes(), content_type="image/png"))
    assert stored.url.startswith(mesh.link_prefix)
    return stored.url


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (_one_character_off, "is not one we issued (its signature does not match)"),
        (lambda url: _with_query(url, **{"X-Amz-Date": "20200101T000000Z"}), "expired at 2020-"),
        (_unsigned, "is not signed and this bucket is private"),
    ],
    ids=["forged", "expired", "unsigned"],
)
def test_the_gateway_answers_a_refused_link_with_403(mesh: Mesh, mesh_link: str, change, says):
    body = {"model": "qwen-image-edit", "prompt": "a hat", "image": [change(mesh_link)]}
    answer = httpx.post(f"{mesh.gateway_url}/v1/images/edits", json=body, timeout=60)
    assert answer.status_code == 403, answer.text
    error = answer.json()
    assert error["message"].startswith("image")
    assert says in error["message"]
    assert error["error"]["type"] == "permission_error"
