"""The gateway's security edge, on a gateway configured as in production: API keys set and no
internal network allowed for image URLs (the mesh's own gateway allows loopback for the other
tests' image sites).

- With keys, every path but /healthz answers 401 without the right key: documented routes, docs,
  metrics, probes, unknown paths alike.
- Image URLs to loopback (in every spelling), link-local (cloud metadata), private or otherwise
  internal addresses, and non-http schemes are refused with 400 and never fetched; so is a redirect
  from an allowed site to any of those.
- A body larger than the cap gets its 413 while the client is still sending it.
- Neither the API keys (ours and the providers') nor base64 image payloads reach any log.

tests/integration/test_gateway_edge.py covers 401 wording, CORS and the per-image cap;
tests/integration/test_storage_fetch.py the storage service's own Fetch rules.
"""

from __future__ import annotations

import base64
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.fixtures import ProviderFakes
from tests.reliability.answers import assert_refusal
from tests.support.hosted import Hosted
from tests.support.mesh import Mesh
from tests.support.processes import LOG_DIR
from tests.support.storage import png_bytes
from tests.support.website import Website, website

KEY = "sk-" + secrets.token_hex(16)
MAX_BODY = 1024 * 1024
EDIT = {"prompt": "a hat", "size": "64x64", "num_inference_steps": 2, "response_format": "b64_json"}
# The redirecting site lives on 127.0.0.2, the one internal address this gateway may fetch from.
ALLOWED_HOST = "127.0.0.2"


@pytest.fixture(scope="module")
def strict(mesh: Mesh) -> Iterator[str]:
    process, url = mesh.another_gateway(
        "gateway-strict",
        {
            "GATEWAY_API_KEYS": f"{KEY},sk-another-{secrets.token_hex(4)}",
            "GATEWAY_FETCH_ALLOW_NETWORKS": f"{ALLOWED_HOST}/32",
            "GATEWAY_MAX_BODY_BYTES": str(MAX_BODY),
        },
    )
    yield url
    process.stop()


@pytest.fixture(scope="module")
def client(strict: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=strict, timeout=60, headers=headers) as client:
        yield client


@pytest.fixture(scope="module")
def target() -> Iterator[Website]:
    """An internal site (loopback) that records every request: it must see none."""
    with website() as site:
        site.add("/cat.png", png_bytes(seed=1))
        yield site


@pytest.fixture(scope="module")
def allowed(target: Website) -> Iterator[Website]:
    with website(ALLOWED_HOST) as site:
        yield site


def _routes(strict: str) -> list[tuple[str, str]]:
    schema = httpx.get(f"{strict}/openapi.json", headers={"Authorization": f"Bearer {KEY}"}).json()
    routes = [
        (method.upper(), path.replace("{task_id}", "some-task"))
        for path, operations in schema["paths"].items()
        for method in operations
    ]
    extra = ["/docs", "/redoc", "/openapi.json", "/metrics", "/readyz", "/v1/nothing", "/"]
    return routes + [("GET", path) for path in extra]


def test_without_the_key_only_healthz_answers(strict: str) -> None:
    routes = _routes(strict)
    assert len(routes) >= 15
    for method, path in routes:
        if path == "/healthz":
            continue
        for headers in ({}, {"Authorization": "Bearer sk-wrong"}, {"Authorization": KEY}):
            answer = httpx.request(method, strict + path, headers=headers, json={})
            body = assert_refusal(answer)
            assert answer.status_code == 401, (method, path, body)
            assert answer.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{strict}/healthz").status_code == 200


def test_with_the_key_they_answer(client: httpx.Client) -> None:
    assert client.get("/v1/models").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/docs").status_code == 200


def _internal_urls(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/cat.png",
        f"http://localhost:{port}/cat.png",
        f"http://127.1:{port}/cat.png",
        f"http://2130706433:{port}/cat.png",  # 127.0.0.1 as one number
        f"http://0x7f000001:{port}/cat.png",
        f"http://0177.0.0.1:{port}/cat.png",
        f"http://[::1]:{port}/cat.png",
        f"http://[::ffff:127.0.0.1]:{port}/cat.png",
        f"http://0.0.0.0:{port}/cat.png",
        f"http://user:pass@127.0.0.1:{port}/cat.png",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fe80::1]/cat.png",
        "http://10.0.0.1/cat.png",
        "http://172.16.0.1/cat.png",
        "http://192.168.1.1/cat.png",
        "http://100.64.0.1/cat.png",
        "http://[fd00::1]/cat.png",
        "http://224.0.0.1/cat.png",
        "http://240.0.0.1/cat.png",
        f"file://127.0.0.1:{port}/cat.png",
        "file:///etc/passwd",
        f"ftp://127.0.0.1:{port}/cat.png",
        f"gopher://127.0.0.1:{port}/_GET%20/cat.png",
        f"dict://127.0.0.1:{port}/",
    ]


def _edit_by_url(client: httpx.Client, url: str) -> httpx.Response:
    return client.post("/v1/images/edits", json={**EDIT, "image": url})


def _dashscope_edit_by_url(client: httpx.Client, url: str) -> httpx.Response:
    content = [{"image": url}, {"text": "a hat"}]
    body = {
        "model": "qwen-image-edit",
        "input": {"messages": [{"role": "user", "content": content}]},
        "parameters": {"size": "64*64", "num_inference_steps": 2},
    }
    return client.post("/api/v1/services/aigc/multimodal-generation/generation", json=body)


@pytest.mark.parametrize("send", [_edit_by_url, _dashscope_edit_by_url])
def test_internal_image_urls_are_refused_and_never_fetched(
    client: httpx.Client, target: Website, send
) -> None:
    port = int(target.base.rsplit(":", 1)[1])
    for url in _internal_urls(port):
        answer = send(client, url)
        assert answer.status_code == 400, (url, answer.text)
        assert_refusal(answer, "/api/v1/services/" if send is _dashscope_edit_by_url else "")
    assert target.hits == []


def test_redirects_to_internal_addresses_are_refused(
    client: httpx.Client, target: Website, allowed: Website
) -> None:
    # The redirecting site is reachable and followed: a redirect to its own page is fetched (and
    # refused for what it holds, not for where it is).
    allowed.add("/page.html", b"<html></html>", content_type="text/html")
    followed = _edit_by_url(client, allowed.redirect("/to-page", f"{allowed.base}/page.html"))
    assert "not an image" in assert_refusal(followed)["message"]
    assert "/page.html" in allowed.hits

    port = int(target.base.rsplit(":", 1)[1])
    for index, location in enumerate(_internal_urls(port)):
        answer = _edit_by_url(client, allowed.redirect(f"/hop-{index}", location))
        assert answer.status_code == 400, (location, answer.text)
        assert_refusal(answer)
    # A chain: allowed -> allowed -> internal.
    last = allowed.redirect("/last", f"http://127.0.0.1:{port}/cat.png")
    assert _edit_by_url(client, allowed.redirect("/first", last)).status_code == 400
    assert target.hits == []


def _raw_request(port: int, head: bytes, body_parts: Iterator[bytes]) -> bytes:
    """Sends the head and as much of the body as the gateway reads, then what it answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        try:
            for part in body_parts:
                sock.sendall(part)
        except OSError:
            pass  # the gateway answered and closed before the body ended: what we want
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def test_an_announced_oversized_body_is_413_before_it_is_sent(strict: str) -> None:
    port = int(strict.rsplit(":", 1)[1])
    head = (
        f"POST /v1/images/generations HTTP/1.1\r\nHost: gateway\r\n"
        f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {100 * MAX_BODY}\r\n\r\n"
    ).encode()
    # Only 64 KiB of the announced 100 MiB is ever sent: the answer cannot wait for the rest.
    answer = _raw_request(port, head, iter([b"{" + b" " * 65535]))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_chunked_body_past_the_cap_is_413_while_it_streams(strict: str) -> None:
    port = int(strict.rsplit(":", 1)[1])
    head = (
        f"POST /v1/images/edits HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {KEY}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    piece = 64 * 1024

    def chunks() -> Iterator[bytes]:
        part = b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
        yield b"%x\r\n%s\r\n" % (len(part), part)
        # Twice the cap, never the final zero-length chunk: the body has no end.
        for _ in range(2 * MAX_BODY // piece):
            yield b"%x\r\n" % piece + b"\0" * piece + b"\r\n"

    answer = _raw_request(port, head, chunks())
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_keys_and_base64_payloads_never_reach_a_log(
    client: httpx.Client, strict: str, mesh: Mesh, hosted: Hosted, provider_fakes: ProviderFakes
) -> None:
    wrong = "sk-wrong-" + secrets.token_hex(12)
    httpx.get(f"{strict}/v1/models", headers={"Authorization": f"Bearer {wrong}"})
    picture = png_bytes(seed=secrets.randbelow(10_000) + 7)
    inline = base64.b64encode(picture).decode()
    made = client.post(
        "/v1/images/generations",
        json={
            "prompt": "a cat",
            "size": "64x64",
            "num_inference_steps": 2,
            "response_format": "b64_json",
        },
    )
    assert made.status_code == 200
    out = made.json()["data"][0]["b64_json"]
    # A payload refused, one that is no image, and a hosted call that sends the provider's key.
    client.post("/v1/images/edits", json={**EDIT, "image": "data:image/png;base64," + inline[:-8]})
    client.post("/v1/images/edits", json={**EDIT, "image": base64.b64encode(b"x" * 300).decode()})
    chat = {"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(f"{hosted.url}/v1/chat/completions", json=chat, timeout=30).status_code == 200

    secrets_ = [
        KEY,
        wrong,
        provider_fakes.openai.api_key,
        provider_fakes.dashscope.api_key,
        provider_fakes.liblib.secret_key,
    ]
    payloads = [inline[100:160], out[100:160], base64.b64encode(b"x" * 300).decode()[:60]]
    logs = [p.log_path for p in mesh.processes.values()]
    logs += [hosted.gateway.log_path, hosted.providers.log_path, LOG_DIR / "gateway-strict.log"]
    for log in logs:
        text = Path(log).read_text(errors="replace")
        for needle in secrets_ + payloads:
            assert needle not in text, f"{needle[:12]}... is in {log}"
