"""The DashScope upstream (one pool for native `/api/v1` and `/compatible-mode/v1` paths) and
small helpers the DashScope adapters share."""

from __future__ import annotations

from typing import Any

from services.common.errors import InvalidArgument
from services.providers.adapter import AdapterEnv
from services.providers.upstream import Upstream

KEY_ENV = "DASHSCOPE_API_KEY"
NATIVE = "/api/v1"
COMPATIBLE = "/compatible-mode/v1"


def dashscope_upstream(env: AdapterEnv) -> Upstream:
    settings = env.settings
    return env.upstream(
        "dashscope",
        lambda: Upstream(
            settings,
            label="DashScope",
            base_url=settings.dashscope_base_url,
            key_env=KEY_ENV,
            headers={"Authorization": f"Bearer {settings.dashscope_api_key.get_secret_value()}"},
        ),
    )


def dashscope_missing(env: AdapterEnv) -> str | None:
    return None if env.settings.dashscope_api_key else KEY_ENV


def check_native(upstream: Upstream, data: dict[str, Any]) -> None:
    """A 200 whose body carries a top-level `code` and no `output` is an error all the same."""
    if data.get("code") and not data.get("output"):
        status = 401 if str(data["code"]).lower() == "invalidapikey" else 400
        raise upstream.error_for(status, str(data.get("message") or ""), str(data["code"]))


def check_seed(seed: int | None) -> int | None:
    if seed is not None and not 0 <= seed <= 2147483647:
        raise InvalidArgument(f"seed: {seed}; DashScope takes 0 to 2147483647")
    return seed


def size_param(width: int, height: int) -> str | None:
    """`W*H` as DashScope spells sizes, or None for the model's default."""
    if not width and not height:
        return None
    if not (width and height):
        raise InvalidArgument("width and height: give both, or neither for the default size")
    return f"{width}*{height}"
