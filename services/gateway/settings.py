"""The gateway's settings, read from `GATEWAY_*` environment variables.

Loopback defaults match `make run`: the gateway on 127.0.0.1:8000 and every backend on its planned
port. `__main__` builds one `GatewaySettings` and passes it down; tests build their own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.common.fetch import AllowNetworks
from services.common.settings import MIB
from services.gateway.routing.replicas import parse_targets

DEFAULT_CATALOG = Path(__file__).with_name("catalog.yaml")

# Backend names the catalogue may route to; each has a target and a deadline below.
LOCAL_BACKENDS = ("qwen_image", "qwen_edit", "storage", "providers", "tasks")


def _split(value: object) -> object:
    """`a,b,c` from the environment; a JSON list works too (pydantic parses it)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # The name `/v1/models` answers as `project` (seed 004).
    project: str = "imagemesh"
    # Base URL clients reach the gateway at, for `data[].url` in /v1/models; empty = from the request.
    public_base_url: str = ""
    catalog_path: Path = DEFAULT_CATALOG

    # A model server's replicas: `host:port` entries separated by commas, and `dns:///host:port`
    # names the gateway resolves to every address (services/gateway/routing).
    qwen_image_target: str = "127.0.0.1:50051"
    qwen_edit_target: str = "127.0.0.1:50052"
    # More deployments of those servers, each pointed at other weights (catalogue `server:`):
    # JSON `{"name": "replicas"}`, replicas as in the targets above. None by default: a catalogue
    # entry whose server is not named here is not served (Catalog.deployed), e.g. Qwen-Image 2.1
    # until `{"qwen-image-2.1": "127.0.0.1:50056"}` says where it runs.
    model_servers: dict[str, str] = Field(default_factory=dict)
    # How a call picks a model-server replica: the least outstanding work (power of two choices)
    # or round_robin (for comparison).
    routing_policy: Literal["least_work", "round_robin"] = "least_work"
    # How often each replica's Load is polled, ms (0: only the answers' trailers report).
    load_poll_ms: int = Field(default=250, ge=0)
    # How often `dns:///` targets of the model servers are resolved again, seconds.
    resolve_seconds: float = Field(default=10.0, gt=0)
    providers_target: str = "127.0.0.1:50053"
    storage_target: str = "127.0.0.1:50054"
    # The task service (seed 001's task API and DashScope's async one are thin clients of it).
    tasks_target: str = "127.0.0.1:50055"
    # gRPC message cap on the gateway's channels (n=4 large PNGs pass 4 MB easily).
    max_message_bytes: int = Field(default=64 * MIB, ge=4 * MIB)

    # Deadlines of each call, seconds. Generation on CPU at 1328x1328 takes tens of seconds.
    generate_deadline_seconds: float = Field(default=300.0, gt=0)
    edit_deadline_seconds: float = Field(default=300.0, gt=0)
    chat_deadline_seconds: float = Field(default=120.0, gt=0)
    storage_deadline_seconds: float = Field(default=30.0, gt=0)
    health_deadline_seconds: float = Field(default=1.0, gt=0)
    tasks_deadline_seconds: float = Field(default=10.0, gt=0)
    # `is_async: false` waits this long for the task's result, then answers its status instead.
    task_sync_wait_seconds: float = Field(default=600.0, gt=0)
    # Retry-After (seconds) on a 429 when the backend gave no hint of its own.
    retry_after_seconds: int = Field(default=2, ge=1)

    # Slow clients (services/gateway/slowclients.py): the request head must arrive within
    # header_timeout_seconds, each body chunk within body_idle_seconds and the whole body within
    # body_timeout_seconds (408 past any); at most limit_concurrency connections and requests at
    # once (uvicorn answers 503 past it; 0 = no limit).
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_idle_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=120.0, gt=0)
    limit_concurrency: int = Field(default=1024, ge=0)

    # Whole request body, checked from Content-Length and while reading: 413 past it.
    max_body_bytes: int = Field(default=25 * MIB, ge=1024)
    # One input image (decoded), whether uploaded, inlined as base64 or fetched by URL.
    max_image_bytes: int = Field(default=20 * MIB, ge=1024)
    # All input images of one request together (413 past it; downloads stop at what is left).
    max_request_image_bytes: int = Field(default=64 * MIB, ge=1024)
    # Image URLs downloaded at once: for one request, and by the whole gateway (more wait).
    fetch_concurrency_per_request: int = Field(default=4, ge=1)
    fetch_concurrency: int = Field(default=32, ge=1)
    fetch_timeout_seconds: float = Field(default=15.0, gt=0)
    fetch_max_redirects: int = Field(default=5, ge=0)
    # Image URLs that resolve to loopback, private, link-local or reserved addresses are refused
    # (the mesh's one fetcher, services/common/fetch) unless in one of these networks, e.g.
    # 127.0.0.0/8.
    fetch_allow_networks: AllowNetworks = []
    # Links that point into our own bucket (the part before the object key): read via Storage.Get.
    storage_link_prefixes: CsvList = Field(
        default_factory=lambda: ["http://127.0.0.1:9000/imagemesh/"]
    )

    # Bearer keys; empty = no auth. Never logged.
    api_keys: CsvList = Field(default_factory=list, repr=False)
    # false: the gateway refuses to start without api_keys (deploy/ sets it: a cluster is not
    # left open by a forgotten Secret); true = anonymous access is intended when no keys are set.
    allow_anonymous: bool = True
    # Proxies in front of the gateway that append to X-Forwarded-For (an ingress: 1): the client
    # address anonymous callers' task quota is kept by (services/gateway/clientaddress.py).
    forwarded_hops: int = Field(default=0, ge=0)
    # Paths that answer without a key when keys are set, e.g. /healthz,/readyz,/docs,/openapi.json.
    open_paths: CsvList = Field(default_factory=lambda: ["/healthz"])
    cors_origins: CsvList = Field(default_factory=list)
    # The web page at / (static files). With API keys set it needs a key like every path, which a
    # browser cannot send when it opens a page: add "/" to open_paths to open it (its files come
    # with it); its own calls send the key typed into it.
    page: bool = True

    # Backends /readyz requires SERVING (the model servers and storage by default).
    ready_backends: CsvList = Field(default_factory=lambda: ["qwen_image", "qwen_edit", "storage"])
    # DashScope `prompt_extend` when the request does not say; the rewrite costs a hosted chat call.
    prompt_extend_default: bool = False
    prompt_extend_model: str = "qwen-plus"
    prompt_extend_deadline_seconds: float = Field(default=30.0, gt=0)
    # What an OpenAI-shaped request to a local model gets for a field it leaves out (seed 003's
    # tables; services/gateway/openai_defaults.py). DashScope-shaped ones keep the model server's.
    openai_default_size: str = "1664x928"  # generations; "auto": the model server's default
    openai_default_steps: int = Field(default=50, ge=0)  # 0: the model server's default
    openai_default_true_cfg_scale: float | None = Field(default=4.0, ge=0, le=50)
    # "" is a negative prompt (true CFG runs with it); unset (null) turns true CFG off.
    openai_default_negative_prompt: str | None = ""
    openai_edit_default_negative_prompt: str | None = " "  # seed 003's edit table
    # Seed 003's fixed 42 when set; unset: a random seed, reported in data[].seed.
    openai_default_seed: int | None = Field(default=None, ge=0)

    log_level: str = "INFO"

    _split_lists = field_validator(
        "storage_link_prefixes",
        "api_keys",
        "open_paths",
        "cors_origins",
        "ready_backends",
        mode="before",
    )(_split)

    @field_validator("qwen_image_target", "qwen_edit_target")
    @classmethod
    def _replica_targets(cls, value: str) -> str:
        parse_targets(value)  # a bad entry names itself at start-up
        return value

    @field_validator("model_servers")
    @classmethod
    def _server_targets(cls, value: dict[str, str]) -> dict[str, str]:
        for target in value.values():
            parse_targets(target)
        return value

    @field_validator("ready_backends")
    @classmethod
    def _known_backends(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(LOCAL_BACKENDS))
        if unknown:
            raise ValueError(f"unknown backends {unknown}; choose from {list(LOCAL_BACKENDS)}")
        return value

    @model_validator(mode="after")
    def _keys_or_anonymous(self) -> GatewaySettings:
        if not self.allow_anonymous and not self.api_keys:
            raise ValueError(
                "GATEWAY_API_KEYS is empty and GATEWAY_ALLOW_ANONYMOUS is false: set the keys "
                "clients must send (in Kubernetes, the gateway-api-keys Secret), or set "
                "GATEWAY_ALLOW_ANONYMOUS=true if anonymous access is intended"
            )
        return self

    def target(self, backend: str) -> str:
        return str(getattr(self, f"{backend}_target"))
