"""The address a request came from, for what is kept per client (the anonymous task quota).

Behind proxies (an ingress controller, a load balancer) the socket's peer is the last proxy;
each proxy appends the address it saw to `X-Forwarded-For`. With GATEWAY_FORWARDED_HOPS = N
proxies in front, the client is the Nth entry from the right: entries further left are what the
client itself sent, which anyone can forge. 0 (the default): the socket's peer.
"""

from __future__ import annotations

import ipaddress

from fastapi import Request


def client_address(request: Request, forwarded_hops: int) -> str:
    peer = request.client.host if request.client else ""
    if forwarded_hops <= 0:
        return peer
    chain = [
        part.strip()
        for header in request.headers.getlist("x-forwarded-for")
        for part in header.split(",")
        if part.strip()
    ]
    if len(chain) < forwarded_hops:
        return peer  # fewer proxies than configured: the header is not trustworthy
    given = chain[-forwarded_hops]
    try:
        return str(ipaddress.ip_address(given))
    except ValueError:
        return peer
