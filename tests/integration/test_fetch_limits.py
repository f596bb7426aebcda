"""One request cannot make the gateway fetch without bounds (issue 19 section 2): the model's
input limit is checked before any URL is fetched, all of a request's images together stay
within GATEWAY_MAX_REQUEST_IMAGE_BYTES, and downloads run a few at a time, per request
(GATEWAY_FETCH_CONCURRENCY_PER_REQUEST) and in the whole gateway (GATEWAY_FETCH_CONCURRENCY).

The images come from a local website that counts the downloads it serves at once.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.fakes.pngs import noise_png, png
from tests.support.mesh import Mesh

EDITS = "/v1/images/edits"
LIMITS = {
    "GATEWAY_MAX_REQUEST_IMAGE_BYTES": str(400 * 1024),
    "GATEWAY_FETCH_CONCURRENCY_PER_REQUEST": "2",
    "GATEWAY_FETCH_CONCURRENCY": "2",
}
# How long the website holds each download: long enough that downloads the gateway starts
# together overlap.
HOLD_SECONDS = 0.5


class CountingSite:
    """Serves /<name>.png; counts downloads served and the most served at once."""

    def __init__(self) -> None:
        self.images = {"small": png(64, 64), "noise": noise_png(320, 320)}
        self.hits: list[str] = []
        self.now = 0
        self.most = 0
        self._lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the stdlib's name
                with site._lock:
                    site.hits.append(self.path)
                    site.now += 1
                    site.most = max(site.most, site.now)
                try:
                    time.sleep(HOLD_SECONDS)
                    name = urllib.parse.urlsplit(self.path).path.strip("/").removesuffix(".png")
                    body = site.images.get(name, b"")
                    self.send_response(200 if body else 404)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the gateway gave up on this download (another one failed)
                finally:
                    with site._lock:
                        site.now -= 1

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, name: str, n: int) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/{name}.png?{n}"

    def reset(self) -> None:
        self.hits, self.now, self.most = [], 0, 0


@pytest.fixture(scope="module")
def gateway(mesh: Mesh) -> Iterator[str]:
    process, url = mesh.another_gateway("fetch-limits-gateway", LIMITS)
    yield url
    process.stop()


@pytest.fixture
def site() -> Iterator[CountingSite]:
    served = CountingSite()
    yield served
    served.server.shutdown()
    served.server.server_close()


def _edit(gateway: str, model: str, images: list[str]) -> httpx.Response:
    body = {"model": model, "prompt": "a hat", "image": images, "size": "64x64"}
    return httpx.post(f"{gateway}{EDITS}", json=body, timeout=120)


def test_the_models_input_limit_is_checked_before_any_fetch(gateway: str, site: CountingSite):
    # Qwen-Image-Edit-Plus takes three inputs (catalog default for the local edit server).
    answer = _edit(gateway, "qwen-image-edit", [site.url("small", i) for i in range(5)])
    assert answer.status_code == 400, answer.text
    assert "qwen-image-edit takes at most 3 input images, got 5" in answer.json()["message"]
    assert site.hits == []


def test_all_images_of_a_request_stay_within_the_request_cap(gateway: str, site: CountingSite):
    size = len(site.images["noise"])
    assert 2 * size > 400 * 1024 > size  # one passes alone, the three together do not
    answer = _edit(gateway, "gpt-image-1", [site.url("noise", i) for i in range(3)])
    assert answer.status_code == 413, answer.text
    assert "are more than 409600 bytes in all" in answer.json()["message"]


def test_one_request_downloads_a_few_images_at_a_time(gateway: str, site: CountingSite):
    # gpt-image-1 takes up to 16 inputs; the session mesh has no OpenAI key, so after the
    # downloads the answer is a 503 naming the key: what counts here is the downloads.
    answer = _edit(gateway, "gpt-image-1", [site.url("small", i) for i in range(4)])
    assert answer.status_code in (200, 503), answer.text
    assert len(site.hits) == 4
    assert site.most <= 2


def test_the_whole_gateway_downloads_a_few_images_at_a_time(gateway: str, site: CountingSite):
    """Two requests of two images each: each alone may fetch both at once, together only two
    downloads run (GATEWAY_FETCH_CONCURRENCY)."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        answers = list(
            pool.map(
                lambda r: _edit(
                    gateway, "gpt-image-1", [site.url("small", r * 10 + i) for i in (0, 1)]
                ),
                range(3),
            )
        )
    assert all(a.status_code in (200, 503) for a in answers), [a.text for a in answers]
    assert len(site.hits) == 6
    assert site.most <= 2


def _with_query(url: str, **changes: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    query.update(changes)
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def test_an_expired_link_into_our_bucket_is_refused(gateway: str):
    """Links into our own bucket are read by key (Storage.Get), not fetched: the storage service
    checks the link's signature and expiry all the same, as S3 would (tests/integration/
    test_storage_links.py has the forged and unsigned ones)."""
    made = httpx.post(
        f"{gateway}/v1/images/generations",
        json={"prompt": "a cat", "size": "64x64", "num_inference_steps": 2},
        timeout=120,
    )
    assert made.status_code == 200, made.text
    link = made.json()["data"][0]["url"]
    assert "X-Amz-Expires=" in link
    fresh = _edit(gateway, "qwen-image-edit", [link])
    assert fresh.status_code == 200, fresh.text
    expired = _with_query(link, **{"X-Amz-Date": "20200101T000000Z", "X-Amz-Expires": "3600"})
    answer = _edit(gateway, "qwen-image-edit", [expired])
    assert answer.status_code == 403, answer.text
    assert "expired at 2020-01-01 01:00:00 UTC" in answer.json()["message"]
