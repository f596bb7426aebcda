"""Which URLs Fetch may download: http(s) only, and never an internal address.

A host is resolved here and every address it resolves to is checked: loopback, private,
link-local (cloud metadata at 169.254.169.254), reserved, multicast and other non-public addresses
are refused unless a configured network allows them. The download then connects to the checked
address itself (the URL's host is kept in the Host header and TLS server name), so a second DNS
answer cannot swap in an internal address between the check and the connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from services.common.errors import InvalidArgument

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


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


def parse(url: str | httpx.URL) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InvalidArgument(f"url: not a valid URL ({exc})") from exc
    if parsed.scheme not in ("http", "https"):
        scheme = parsed.scheme or "no scheme"
        raise InvalidArgument(f"url: {scheme!r} is not allowed; give an http:// or https:// URL")
    if not parsed.host:
        raise InvalidArgument(f"url: {shown(parsed)} has no host")
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
    def __init__(self, allow_networks: Sequence[IPNetwork] = ()) -> None:
        self._allow = list(allow_networks)

    def check_address(self, address: IPAddress, host: str) -> None:
        kind = _kind(address)
        if kind is None or any(address in network for network in self._allow):
            return
        # Name the address only when the caller wrote it: no revealing what internal names map to.
        if host == str(address):
            said = f"{address} is a {kind} address"
        else:
            said = f"{host!r} resolves to a {kind} address"
        raise InvalidArgument(f"url: {said}; internal hosts may not be fetched")

    async def resolve(self, url: str | httpx.URL) -> Target:
        parsed = parse(url)
        host = parsed.raw_host.decode("ascii")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal]
        else:
            addresses = await _lookup(host, port)
        for address in addresses:
            self.check_address(address, host)
        chosen = addresses[0]
        return Target(
            url=parsed,
            address=chosen,
            pinned_url=parsed.copy_with(host=str(chosen)),
            host_header=parsed.netloc.decode("ascii").rpartition("@")[2],
            server_name=host,
        )


async def _lookup(host: str, port: int) -> list[IPAddress]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidArgument(f"url: cannot resolve host {host!r}") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        # Drop an IPv6 zone ("fe80::1%eth0") before parsing; it is link-local either way.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise InvalidArgument(f"url: cannot resolve host {host!r}")
    return addresses
