"""Which URLs may be fetched: http(s) only, and never an internal address.

A host is resolved here and every address it resolves to is checked: loopback, private,
link-local (cloud metadata at 169.254.169.254), reserved, multicast and other non-public addresses
are refused unless a configured network allows them. The download then connects to the checked
address itself (the URL's host is kept in the Host header and TLS server name), so a second DNS
answer cannot swap in an internal address between the check and the connection. `Downloader`
calls `resolve` again for every redirect hop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from services.common.fetch.errors import FetchFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SCHEMES = ("http", "https")


@dataclass(frozen=True)
class Target:
    """A checked URL and the address to connect to."""

    url: httpx.URL  # as the caller (or a redirect) gave it
    address: IPAddress
    pinned_url: httpx.URL  # the same URL with the checked address as its host
    host_header: str
    server_name: str  # for TLS: the certificate must match the URL's host

    @property
    def secure(self) -> bool:
        return self.url.scheme == "https"


def shown(url: httpx.URL | str) -> str:
    """A URL for messages: without credentials or query (signed URLs carry secrets there)."""
    try:
        u = httpx.URL(str(url))
        text = f"{u.scheme}://{u.netloc.decode('ascii', 'replace')}{u.path}"
    except httpx.InvalidURL:
        text = str(url)
    return text if len(text) <= 200 else text[:200] + "..."


def parse(url: str | httpx.URL, field: str = "url") -> httpx.URL:
    """The URL, if its scheme is http(s) and it has a host; FetchFailed("refused") otherwise."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise FetchFailed(field, f"not a valid URL ({exc})", "refused") from exc
    if not parsed.scheme:
        raise FetchFailed(
            field, f"{str(url)[:200]!r} has no scheme; give an http:// or https:// URL", "refused"
        )
    if parsed.scheme not in SCHEMES:
        raise FetchFailed(
            field,
            f"scheme {parsed.scheme!r} is not allowed; give an http:// or https:// URL",
            "refused",
        )
    if not parsed.host:
        raise FetchFailed(field, f"{shown(parsed)} has no host", "refused")
    if parsed.port is not None and not 0 < parsed.port <= 65535:
        # httpx parses any number; the socket layer would overflow on it.
        raise FetchFailed(
            field, f"{shown(parsed)} has port {parsed.port}, outside 1..65535", "refused"
        )
    return parsed


def _kind(address: IPAddress) -> str | None:
    """Why an address is internal, or None when it is public."""
    if address.version == 6 and address.ipv4_mapped is not None:  # type: ignore[union-attr]
        return _kind(address.ipv4_mapped)  # type: ignore[union-attr]
    for kind, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return kind
    return None if address.is_global else "non-public"


class UrlPolicy:
    """Public addresses pass; internal ones only inside `allow_networks`."""

    def __init__(self, allow_networks: Sequence[IPNetwork] = ()) -> None:
        self._allow = list(allow_networks)

    def check_address(self, address: IPAddress, host: str, field: str = "url") -> None:
        kind = _kind(address)
        if kind is None or any(address in network for network in self._allow):
            return
        # Name the address only when the caller wrote it: no revealing what internal names map to.
        if host == str(address):
            said = f"{address} is a {kind} address"
        else:
            said = f"{host!r} resolves to a {kind} address"
        raise FetchFailed(field, f"{said}; internal hosts may not be fetched", "refused")

    async def resolve(self, url: str | httpx.URL, field: str = "url") -> Target:
        parsed = parse(url, field)
        host = parsed.raw_host.decode("ascii")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        addresses = [literal] if literal is not None else await _lookup(host, port, field)
        for address in addresses:
            self.check_address(address, host, field)
        chosen = addresses[0]
        return Target(
            url=parsed,
            address=chosen,
            pinned_url=parsed.copy_with(host=str(chosen)),
            host_header=parsed.netloc.decode("ascii").rpartition("@")[2],
            server_name=host,
        )


async def _lookup(host: str, port: int, field: str) -> list[IPAddress]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchFailed(field, f"cannot resolve host {host!r}", "unreachable") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        # Drop an IPv6 zone ("fe80::1%eth0") before parsing; it is link-local either way.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise FetchFailed(field, f"cannot resolve host {host!r}", "unreachable")
    return addresses
