"""Fetch's URL rules: schemes, and internal addresses refused unless allow-listed."""

from __future__ import annotations

import ipaddress

import pytest

from services.common.errors import InvalidArgument
from services.storage.url_policy import UrlPolicy, shown


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1/x.png", "127.0.0.1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://10.0.0.1/x.png", "10.0.0.1 is a private address"),
        ("http://192.168.1.1/x.png", "private address"),
        ("http://[::1]/x.png", "::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/x.png", "loopback address"),
        ("http://0.0.0.0/x.png", "address"),
        ("http://localhost/x.png", "'localhost' resolves to a loopback address"),
        ("http://2130706433/x.png", "resolves to a loopback address"),
    ],
)
async def test_internal_addresses_are_refused(url: str, says: str) -> None:
    with pytest.raises(InvalidArgument, match=says.replace(".", r"\.").replace("[", r"\[")):
        await UrlPolicy().resolve(url)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://example.com/x.png", "'ftp' is not allowed"),
        ("file:///etc/passwd", "'file' is not allowed"),
        ("example.com/x.png", "is not allowed"),
        ("http:///x.png", "has no host"),
        ("http://no-such-host.invalid/x.png", "cannot resolve host"),
    ],
)
async def test_bad_urls_are_refused(url: str, says: str) -> None:
    with pytest.raises(InvalidArgument, match=says):
        await UrlPolicy().resolve(url)


async def test_an_allowed_network_lets_its_addresses_through() -> None:
    policy = UrlPolicy([ipaddress.ip_network("127.0.0.0/8")])
    target = await policy.resolve("http://127.0.0.1:8080/a.png?x=1")
    assert str(target.pinned_url) == "http://127.0.0.1:8080/a.png?x=1"
    assert target.host_header == "127.0.0.1:8080"
    with pytest.raises(InvalidArgument, match="private"):
        await policy.resolve("http://10.0.0.1/a.png")


async def test_the_connection_is_pinned_to_the_checked_address() -> None:
    target = await UrlPolicy([ipaddress.ip_network("127.0.0.0/8")]).resolve(
        "https://user:pw@localhost:8443/a.png"
    )
    assert target.address.is_loopback
    assert target.pinned_url.host == str(target.address)
    assert target.host_header == "localhost:8443"
    assert target.server_name == "localhost"


async def test_public_addresses_pass() -> None:
    target = await UrlPolicy().resolve("https://93.184.215.14/a.png")
    assert str(target.address) == "93.184.215.14"


def test_messages_hide_credentials_and_query() -> None:
    assert shown("https://u:p@example.com/a.png?X-Amz-Signature=s") == "https://example.com/a.png"
