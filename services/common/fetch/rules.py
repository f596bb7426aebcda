"""What a service configures for its downloads (`FetchRules`), and the settings type for its
allow-list (`AllowNetworks`: `a/8,b/16` from the environment, a JSON list works too).

Each service keeps its own environment names (STORAGE_FETCH_*, GATEWAY_FETCH_*,
PROVIDERS_FETCH_*) and builds one `FetchRules` from them.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import BeforeValidator
from pydantic_settings import NoDecode

from services.common.fetch.policy import IPNetwork


def split_networks(value: object) -> object:
    """CIDRs from `a/8, b/16` or a JSON list; host bits may be set (`127.0.0.1/8`)."""
    if isinstance(value, str):
        text = value.strip()
        parts = json.loads(text) if text.startswith("[") else text.split(",")
        value = [str(part).strip() for part in parts if str(part).strip()]
    if isinstance(value, list | tuple):
        networks = []
        for part in value:
            try:
                networks.append(
                    part
                    if isinstance(part, ipaddress.IPv4Network | ipaddress.IPv6Network)
                    else ipaddress.ip_network(str(part), strict=False)
                )
            except ValueError as exc:
                raise ValueError(
                    f"{part!r} is not a network; write CIDRs like 10.1.0.0/16"
                ) from exc
        return networks
    return value


AllowNetworks = Annotated[list[IPNetwork], NoDecode, BeforeValidator(split_networks)]


@dataclass(frozen=True)
class FetchRules:
    max_bytes: int  # the body, counted while it streams
    timeout_seconds: float  # the whole download, every redirect hop included
    max_redirects: int = 5
    allow_networks: Sequence[IPNetwork] = ()  # internal networks that may be fetched anyway
    # Refuse an answer whose Content-Type is not image/* before reading it. Off for hosts that
    # label images application/octet-stream (object stores often do); the bytes are sniffed
    # either way.
    image_content_type: bool = True
    user_agent: str = "imagemesh/1"
