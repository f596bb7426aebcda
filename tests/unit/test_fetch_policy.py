"""The fetcher's URL policy: schemes, and internal addresses refused unless allow-listed."""

from __future__ import annotations

import ipaddress

import pytest

from services.common.fetch import FetchFailed, UrlPolicy, shown
from services.common.fetch.rules import split_networks


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
    with pytest.raises(FetchFailed, match=says.replace(".", r"\.").replace("[", r"\[")) as err:
        await UrlPolicy().resolve(url)
    assert err.value.reason == "refused"
    assert err.value.message.startswith("url: ")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://example.com/x.png", "scheme 'ftp' is not allowed; give an http:// or https://"),
        ("file:///etc/passwd", "scheme 'file' is not allowed"),
        ("gopher://127.0.0.1:70/_x", "scheme 'gopher' is not allowed"),
        ("example.com/x.png", "'example.com/x.png' has no scheme"),
        ("http:///x.png", "has no host"),
    ],
)
async def test_bad_urls_are_refused(url: str, says: str) -> None:
    with pytest.raises(FetchFailed, match=says) as err:
        await UrlPolicy().resolve(url, field="image[1]")
    assert err.value.reason == "refused"
    assert err.value.message.startswith("image[1]: ")


async def test_an_unknown_host_is_unreachable_not_refused() -> None:
    with pytest.raises(FetchFailed, match="cannot resolve host 'no-such-host.invalid'") as err:
        await UrlPolicy().resolve("http://no-such-host.invalid/x.png")
    assert err.value.reason == "unreachable"


async def test_an_allowed_network_lets_its_addresses_through() -> None:
    policy = UrlPolicy([ipaddress.ip_network("127.0.0.0/8")])
    target = await policy.resolve("http://127.0.0.1:8080/a.png?x=1")
    assert str(target.pinned_url) == "http://127.0.0.1:8080/a.png?x=1"
    assert target.host_header == "127.0.0.1:8080"
    with pytest.raises(FetchFailed, match="private"):
        await policy.resolve("http://10.0.0.1/a.png")


async def test_a_single_address_network_allows_that_address_only() -> None:
    policy = UrlPolicy([ipaddress.ip_network("127.0.0.2/32")])
    assert str((await policy.resolve("http://127.0.0.2:81/a.png")).address) == "127.0.0.2"
    with pytest.raises(FetchFailed, match="127.0.0.1 is a loopback address"):
        await policy.resolve("http://127.0.0.1:81/a.png")


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


def test_allow_lists_read_from_settings_text() -> None:
    networks = split_networks(" 127.0.0.1/8, 10.1.0.0/16 ")
    assert [str(n) for n in networks] == ["127.0.0.0/8", "10.1.0.0/16"]
    assert split_networks('["::1/128"]') == [ipaddress.ip_network("::1/128")]
    assert split_networks("") == []
    with pytest.raises(ValueError, match="'10.0.0.300/8' is not a network; write CIDRs like"):
        split_networks("10.0.0.300/8")
