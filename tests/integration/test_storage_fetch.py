"""Storage.Fetch against a real local HTTP server: images in, internal hosts and bad bodies out."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from imagemesh.v1 import storage_pb2, storage_pb2_grpc
from minio import Minio

from services.common.channels import insecure_channel
from services.common.fetch import Downloader, FetchFailed
from services.storage.fetcher import fetch_rules
from services.storage.service import StorageService, start
from services.storage.settings import StorageSettings
from tests.support.storage import (
    bucket_keys,
    minio_client,
    png_bytes,
    read_object,
    storage_settings,
)

BUCKET = "test-storage-fetch"
CAP = 64 * 1024
IMAGE = png_bytes(32, 32, seed=1)
JPEG = png_bytes(32, 32, seed=2, fmt="JPEG")
BIG = png_bytes(200, 200, seed=3)  # noise: about 120 KB, over CAP


class Site(BaseHTTPRequestHandler):
    """A remote web site: images, a page, a liar, big bodies, redirects, a stall."""

    release = threading.Event()

    def do_GET(self) -> None:  # the stdlib's name
        routes = {
            "/cat.png": (200, "image/png", IMAGE),
            "/photo": (200, "image/png", JPEG),  # says PNG, is a JPEG
            "/page.html": (200, "text/html", b"<html>not an image</html>"),
            "/fake.png": (200, "image/png", b"this is no image at all"),
            "/big.png": (200, "image/png", BIG),
            "/missing.png": (404, "text/plain", b"no such file"),
        }
        if self.path in routes:
            status, content_type, body = routes[self.path]
            self._answer(status, content_type, body, length=True)
        elif self.path == "/big-unsized.png":
            # No Content-Length: the cap must be enforced while the body streams.
            self._answer(200, "image/png", BIG, length=False)
        elif self.path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", self.path.removeprefix("/redirect/").replace("~", "/"))
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/stall.png":
            self.release.wait(10)
            self._answer(200, "image/png", IMAGE, length=True)

    def _answer(self, status: int, content_type: str, body: bytes, length: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    Site.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
async def guarded(s3_server) -> AsyncIterator[StorageService]:
    """The default: no internal address allowed."""
    service = await start(storage_settings(s3_server, BUCKET, fetch_max_bytes=CAP))
    yield service
    await service.close(0)


@pytest.fixture(scope="module")
async def trusting(s3_server) -> AsyncIterator[StorageService]:
    """Loopback allow-listed (the local site plays a remote one); every other internal net refused."""
    settings = storage_settings(
        s3_server, BUCKET, fetch_max_bytes=CAP, fetch_allow_networks="127.0.0.0/8"
    )
    service = await start(settings)
    yield service
    await service.close(0)


async def _fetch(service: StorageService, url: str, **fields: str) -> storage_pb2.StoredObject:
    async with insecure_channel(service.address) as channel:
        return await storage_pb2_grpc.StorageStub(channel).Fetch(
            storage_pb2.FetchRequest(url=url, **fields)
        )


@pytest.fixture(scope="module")
def s3(s3_server) -> Minio:
    return minio_client(s3_server)


async def test_an_allowed_image_is_fetched_into_the_bucket(trusting, site: str, s3: Minio) -> None:
    stored = await _fetch(trusting, f"{site}/cat.png")
    assert stored.key.endswith("/cat.png") and stored.content_type == "image/png"
    assert read_object(s3, BUCKET, stored.key) == IMAGE
    assert s3.stat_object(BUCKET, stored.key).content_type == "image/png"


async def test_the_stored_type_is_what_the_bytes_are(trusting, site: str, s3: Minio) -> None:
    stored = await _fetch(trusting, f"{site}/photo", prefix="fetched")
    assert stored.content_type == "image/jpeg"
    assert stored.key.startswith("fetched/") and stored.key.endswith("/photo.jpg")
    assert read_object(s3, BUCKET, stored.key) == JPEG


async def test_a_redirect_to_an_allowed_image_is_followed(trusting, site: str, s3: Minio) -> None:
    stored = await _fetch(trusting, f"{site}/redirect/~cat.png", name="kept.png")
    assert stored.key.endswith("/kept.png")
    assert read_object(s3, BUCKET, stored.key) == IMAGE


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1/x.png", "127.0.0.1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://10.0.0.1/x.png", "10.0.0.1 is a private address"),
        ("http://localhost:9000/imagemesh/", "'localhost' resolves to a loopback address"),
        ("file:///etc/passwd", "'file' is not allowed"),
        ("", "url: required"),
    ],
)
async def test_internal_and_non_http_urls_are_refused(
    guarded, s3: Minio, url: str, says: str
) -> None:
    before = bucket_keys(s3, BUCKET)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _fetch(guarded, url)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert says in err.value.details()
    assert bucket_keys(s3, BUCKET) == before


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/page.html", "is not an image (Content-Type: text/html)"),
        ("/fake.png", "not a readable image"),
        ("/big.png", f"larger than the {CAP}-byte limit"),
        ("/big-unsized.png", f"larger than the {CAP}-byte limit"),
        ("/missing.png", "answered HTTP 404"),
        # The site is allowed; where it redirects to is checked again, hop by hop.
        ("/redirect/http:~~169.254.169.254~latest~meta-data~", "169.254.169.254 is a link-local"),
        ("/redirect/http:~~10.0.0.1~x.png", "10.0.0.1 is a private address"),
    ],
)
async def test_bad_bodies_and_bad_redirects_are_refused(
    trusting, site: str, s3: Minio, path: str, says: str
) -> None:
    before = bucket_keys(s3, BUCKET)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _fetch(trusting, site + path)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert says in err.value.details()
    assert bucket_keys(s3, BUCKET) == before


async def test_a_bad_name_is_refused_before_downloading(trusting, site: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _fetch(trusting, f"{site}/cat.png", name="../cat.png")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_download_that_stalls_is_cut_at_the_timeout(trusting, site: str) -> None:
    settings = StorageSettings(fetch_timeout_seconds=0.5, fetch_allow_networks="127.0.0.0/8")
    # The downloader with storage's rules, without gRPC or S3: a stalled download never
    # reaches the uploader.
    downloader = Downloader(fetch_rules(settings))
    try:
        with pytest.raises(FetchFailed, match="url: .* took longer than 0.5 s") as err:
            await downloader.download(f"{site}/stall.png")
        assert err.value.reason == "timeout"
    finally:
        await downloader.close()
