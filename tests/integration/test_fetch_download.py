"""The one fetcher (`services.common.fetch.Downloader`) against real local web sites: one on
127.0.0.2, the only internal address allowed, and an internal one on 127.0.0.1 that must never
be reached, directly or through a redirect."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from services.common.fetch import Downloader, FetchFailed, FetchRules
from tests.support.storage import png_bytes
from tests.support.website import Website, website

PNG = png_bytes(16, 16, seed=1)
JPEG = png_bytes(16, 16, seed=2, fmt="JPEG")
CAP = 4096
ALLOWED = "127.0.0.2"


@pytest.fixture(scope="module")
def internal() -> Iterator[Website]:
    with website("127.0.0.1") as site:
        site.add("/secret.png", PNG)
        yield site


@pytest.fixture(scope="module")
def remote() -> Iterator[Website]:
    with website(ALLOWED) as site:
        site.add("/cat.png", PNG)
        site.add("/photo.png", JPEG)  # called PNG, is a JPEG
        site.add("/octet", PNG, content_type="application/octet-stream")
        site.add("/page.html", b"<html></html>", content_type="text/html")
        site.add("/fake.png", b"no image here")
        site.add("/empty.png", b"")
        site.add("/big.png", png_bytes(100, 100, seed=3))
        site.add("/gone.png", b"expired", content_type="text/plain", status=403)
        site.add("/broken.png", b"oops", content_type="text/plain", status=503)
        site.redirect("/to-cat", "/cat.png")
        site.redirect("/loop", "/loop")
        site.redirect("/to-bad-port", "http://[::1")
        site.redirect("/to-colons", "http://a:b:c/x.png")
        site.redirect("/to-huge-port", "http://127.0.0.2:99999999/cat.png")
        site.redirect("/to-space", "http://exa mple.com:99999/x")
        site.redirect("/to-empty-host", "//:80/x")
        yield site


def _rules(**overrides: object) -> FetchRules:
    values: dict[str, object] = {
        "max_bytes": CAP,
        "timeout_seconds": 10.0,
        "max_redirects": 3,
        "allow_networks": [ipaddress.ip_network(f"{ALLOWED}/32")],
    }
    values.update(overrides)
    return FetchRules(**values)  # type: ignore[arg-type]


@pytest.fixture
async def downloader() -> AsyncIterator[Downloader]:
    downloader = Downloader(_rules())
    yield downloader
    await downloader.close()


async def test_an_allowed_image_comes_back_as_what_its_bytes_are(
    downloader: Downloader, remote: Website
) -> None:
    got = await downloader.download(f"{remote.base}/cat.png")
    assert (got.data, got.content_type) == (PNG, "image/png")
    got = await downloader.download(f"{remote.base}/photo.png")
    assert (got.data, got.content_type) == (JPEG, "image/jpeg")


async def test_a_redirect_on_the_same_site_is_followed(
    downloader: Downloader, remote: Website
) -> None:
    assert (await downloader.download(f"{remote.base}/to-cat")).data == PNG


async def test_a_redirect_to_an_internal_address_is_refused_unfetched(
    downloader: Downloader, remote: Website, internal: Website
) -> None:
    port = internal.base.rsplit(":", 1)[1]
    for location in (
        f"{internal.base}/secret.png",
        f"http://localhost:{port}/secret.png",
        f"http://[::ffff:127.0.0.1]:{port}/secret.png",
        "http://169.254.169.254/latest/meta-data/",
    ):
        url = remote.redirect(f"/hop-{len(remote.pages)}", location)
        with pytest.raises(FetchFailed) as err:
            await downloader.download(url, field="image")
        assert err.value.reason == "refused", err.value.message
        assert err.value.message.startswith("image: ")
        assert "internal hosts may not be fetched" in err.value.message
    # A chain: allowed -> allowed -> internal.
    last = remote.redirect("/last", f"{internal.base}/secret.png")
    with pytest.raises(FetchFailed, match="127.0.0.1 is a loopback address"):
        await downloader.download(remote.redirect("/first", last))
    assert internal.hits == []


async def test_the_internal_site_is_refused_directly(
    downloader: Downloader, internal: Website
) -> None:
    with pytest.raises(FetchFailed, match="url: 127.0.0.1 is a loopback address") as err:
        await downloader.download(f"{internal.base}/secret.png")
    assert err.value.reason == "refused"
    assert internal.hits == []


@pytest.mark.parametrize(
    ("path", "reason", "says"),
    [
        ("/page.html", "not_image", "is not an image (Content-Type: text/html)"),
        ("/octet", "not_image", "is not an image (Content-Type: application/octet-stream)"),
        ("/fake.png", "not_image", "the bytes are not a readable image"),
        ("/empty.png", "not_image", "answered an empty body"),
        ("/big.png", "too_large", f"is larger than the {CAP}-byte limit"),
        ("/gone.png", "status", "answered HTTP 403"),
        ("/broken.png", "status", "answered HTTP 503"),
        ("/loop", "redirects", "redirected more than 3 times"),
        ("/to-bad-port", "unreachable", "Invalid URL in location header: Invalid port"),
        ("/to-colons", "unreachable", "Invalid URL in location header"),
        ("/missing.png", "status", "answered HTTP 404"),
    ],
)
async def test_bad_answers_say_why(
    downloader: Downloader, remote: Website, path: str, reason: str, says: str
) -> None:
    with pytest.raises(FetchFailed) as err:
        await downloader.download(remote.base + path)
    assert err.value.reason == reason
    assert says in err.value.message
    if reason == "status":
        assert err.value.status == int(says.rsplit(" ", 1)[1])


@pytest.mark.parametrize("path", ["/to-huge-port", "/to-space", "/to-empty-host"])
async def test_a_redirect_to_a_strange_url_is_refused_cleanly(
    downloader: Downloader, remote: Website, path: str
) -> None:
    """Locations that parse as a URL no one can fetch: a FetchFailed, never another error."""
    with pytest.raises(FetchFailed) as err:
        await downloader.download(remote.base + path)
    assert err.value.message.startswith("url: "), err.value.message


async def test_content_types_can_be_left_to_sniffing(remote: Website) -> None:
    lenient = Downloader(_rules(image_content_type=False))
    try:
        got = await lenient.download(f"{remote.base}/octet")
        assert got.content_type == "image/png"
        with pytest.raises(FetchFailed, match="not a readable image"):
            await lenient.download(f"{remote.base}/page.html")
    finally:
        await lenient.close()


async def test_a_closed_port_is_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind((ALLOWED, 0))
        port = sock.getsockname()[1]
    lone = Downloader(_rules())
    try:
        with pytest.raises(
            FetchFailed, match=f"could not download http://{ALLOWED}:{port}/"
        ) as err:
            await lone.download(f"http://{ALLOWED}:{port}/x.png")
        assert err.value.reason == "unreachable"
    finally:
        await lone.close()
