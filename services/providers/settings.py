"""Settings of the providers service (env prefix `PROVIDERS_`).

Provider keys and base URLs are also read from the names every SDK uses (`OPENAI_API_KEY`,
`DASHSCOPE_API_KEY`, `LIBLIB_ACCESS_KEY`, ...), so an existing environment works as is; the
`PROVIDERS_`-prefixed name wins when both are set. Base URLs are settable so that tests (and
regional hosts) can point the adapters elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from services.common.fetch import AllowNetworks
from services.common.settings import MIB, ServerSettings


def _env(name: str) -> AliasChoices:
    return AliasChoices(f"PROVIDERS_{name}", name)


class ProvidersSettings(ServerSettings):
    model_config = SettingsConfigDict(env_prefix="PROVIDERS_", populate_by_name=True)

    listen: str = "127.0.0.1:50053"
    metrics_listen: str = "127.0.0.1:9153"

    # A folder of extra adapter files (`*.py`, `_*` skipped), loaded after the built-in ones.
    plugin_dir: Path | None = None

    # Upper bound for one HTTP request to a provider; the caller's gRPC deadline lowers it.
    request_timeout_seconds: float = Field(default=120.0, gt=0)
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    # Attempts per upstream request for transient failures (5xx, timeouts, refused connections,
    # short Retry-After 429s), always within the caller's deadline.
    max_attempts: int = Field(default=3, ge=1, le=10)
    retry_backoff_seconds: float = Field(default=0.5, ge=0)
    # A 429 whose Retry-After is longer than this is answered RESOURCE_EXHAUSTED at once.
    max_retry_after_seconds: float = Field(default=5.0, ge=0)
    # Async tasks (Wanx, LiblibAI): first poll after this, doubling up to the max.
    poll_initial_seconds: float = Field(default=1.0, gt=0)
    poll_max_seconds: float = Field(default=5.0, gt=0)
    # Without a caller deadline an async task is given up after this long.
    task_timeout_seconds: float = Field(default=600.0, gt=0)
    # Each provider result image is downloaded; larger ones are refused.
    max_image_bytes: int = Field(default=50 * MIB, ge=1024)
    # Result and input image URLs go through the mesh's one fetcher: a host (or a redirect to
    # one) that resolves to a loopback, private, link-local or reserved address is refused unless
    # in one of these networks (comma-separated CIDRs, e.g. 127.0.0.0/8 for local test fakes).
    fetch_allow_networks: AllowNetworks = []
    fetch_max_redirects: int = Field(default=5, ge=0)
    # Pooled connections per provider.
    max_connections: int = Field(default=100, ge=1)
    # The connection pool under the httpx clients: "aiohttp" (less CPU per call) or "httpx"
    # (httpcore's own).
    http_transport: Literal["aiohttp", "httpx"] = "aiohttp"

    # prompt_extend (seed 002): the chat model that polishes prompts; empty disables rewriting.
    rewrite_model: str = "qwen-plus"
    rewrite_timeout_seconds: float = Field(default=30.0, gt=0)

    openai_api_key: SecretStr = Field(
        default=SecretStr(""), validation_alias=_env("OPENAI_API_KEY"), repr=False
    )
    openai_base_url: str = Field(
        default="https://api.openai.com/v1", validation_alias=_env("OPENAI_BASE_URL")
    )
    # The host root, e.g. https://dashscope-intl.aliyuncs.com; a trailing /api/v1 (the SDK's
    # convention) or /compatible-mode/v1 is accepted and removed.
    dashscope_api_key: SecretStr = Field(
        default=SecretStr(""), validation_alias=_env("DASHSCOPE_API_KEY"), repr=False
    )
    dashscope_base_url: str = Field(
        default="https://dashscope.aliyuncs.com", validation_alias=_env("DASHSCOPE_BASE_URL")
    )
    liblib_access_key: SecretStr = Field(
        default=SecretStr(""), validation_alias=_env("LIBLIB_ACCESS_KEY"), repr=False
    )
    liblib_secret_key: SecretStr = Field(
        default=SecretStr(""), validation_alias=_env("LIBLIB_SECRET_KEY"), repr=False
    )
    liblib_base_url: str = Field(
        default="https://openapi.liblibai.cloud", validation_alias=_env("LIBLIB_BASE_URL")
    )

    @field_validator("openai_base_url", "liblib_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("dashscope_base_url")
    @classmethod
    def _dashscope_root(cls, value: str) -> str:
        value = value.rstrip("/")
        for suffix in ("/api/v1", "/compatible-mode/v1"):
            value = value.removesuffix(suffix)
        return value

    @field_validator("plugin_dir", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value
